"""The embedded default's moto server, with AWS rules that moto does not keep.

``python -m difusion.local.motoserver -H 127.0.0.1 -p PORT`` is ``python -m moto.server``
after :func:`apply_cloud_rules`, plus CloudFront KeyValueStore's data plane
(:mod:`difusion.local.kvs`) on ``$DIFUSION_KVS_PORT`` when it is set. Each rule is documented
AWS behaviour the pipeline relies on; without it the emulator would be kinder than AWS, or
harsher, and a test would prove nothing about the cloud.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from moto.cloudfront.exceptions import CloudFrontException
from moto.cloudfront.models import CloudFrontBackend, Invalidation
from moto.dynamodb.models import DynamoDBBackend

from difusion.local import kvs


class InvalidationBatchAlreadyExists(CloudFrontException):
    def __init__(self, caller_reference: str) -> None:
        super().__init__(
            "InvalidationBatchAlreadyExists",
            f"The caller reference {caller_reference} was used for a different invalidation batch",
        )


def apply_cloud_rules() -> None:
    _keep_caller_references()
    _isolate_transactions()


# Every DynamoDB call that reads or writes items: serialized with the transactions.
_ITEM_CALLS = ("get_item", "query", "scan", "put_item", "update_item", "delete_item")
_TRANSACTIONS = threading.RLock()


def _isolate_transactions() -> None:
    """DynamoDB ``TransactWriteItems`` (developer guide, "Amazon DynamoDB Transactions:
    How it works", isolation levels): a transaction is serializable with every other
    write, and a canceled one changes nothing. moto runs a transaction against the live
    tables and, when it is canceled, puts back a copy of each whole table taken when it
    started: writes other clients made meanwhile are undone (seen under faults: a
    delivery's recorded publication vanished when the monitor's retried, canceled
    transaction rolled back). Item calls and transactions take turns, so a rollback
    restores exactly what the transaction found, and nobody reads a transaction half
    done."""
    if getattr(DynamoDBBackend.transact_write_items, "isolated", False):
        return

    def serialized(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            with _TRANSACTIONS:
                return method(*args, **kwargs)

        call.isolated = True  # type: ignore[attr-defined]
        return call

    for name in ("transact_write_items", *_ITEM_CALLS):
        setattr(DynamoDBBackend, name, serialized(getattr(DynamoDBBackend, name)))


def _keep_caller_references() -> None:
    """CloudFront ``CreateInvalidation`` (API reference, ``InvalidationBatch``): "If you
    make a second invalidation request with the same value for CallerReference, and if the
    rest of the request is the same, CloudFront doesn't create a new invalidation request.
    Instead, CloudFront returns information about the invalidation request that you
    previously created"; with other paths it is ``InvalidationBatchAlreadyExists``."""
    create = CloudFrontBackend.create_invalidation
    if getattr(create, "keeps_caller_references", False):
        return

    def create_invalidation(
        self: CloudFrontBackend, dist_id: str, paths: list[str], caller_ref: str
    ) -> Invalidation:
        for existing in self.invalidations.get(dist_id, []):
            if existing.caller_ref == caller_ref:
                if existing.paths != paths:
                    raise InvalidationBatchAlreadyExists(caller_ref)
                return existing
        invalidation: Invalidation = create(self, dist_id, paths, caller_ref)
        return invalidation

    create_invalidation.keeps_caller_references = True  # type: ignore[attr-defined]
    CloudFrontBackend.create_invalidation = create_invalidation  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> Any:
    from moto.server import main as moto_main

    apply_cloud_rules()
    kvs_port = os.environ.get(kvs.PORT_VARIABLE)
    if kvs_port:  # CloudFront KeyValueStore's data plane, which moto does not have
        kvs.serve(int(kvs_port))
    return moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
