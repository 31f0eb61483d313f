"""A difusor's version pointer in its distribution's CloudFront KeyValueStore.

API reference (CloudFront KeyValueStore): ``DescribeKeyValueStore`` returns the store's
``ETag``, "the version identifier for the current version of the key value store";
``GetKey`` returns a key's value (``ResourceNotFoundException`` when there is none) but no
ETag; ``PutKey`` requires ``IfMatch``, the store's current ETag, and answers
``ConflictException`` when it is not, with the new ETag on success. So a read takes the ETag
before and after the value and retries until they agree, and a write is a compare-and-set on
the whole store (one key per store here: ``live``).

The client is built from the difusor's delivery role (the store is in the difusor's
account). The data plane is signed with SigV4A: boto3 needs ``botocore[crt]``, and temporary
credentials must come from a regional STS endpoint (CloudFront developer guide, "Restrictions
on CloudFront Functions", regional endpoint for KeyValueStore).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from difusion.errors import DeliveryError
from difusion.versions import POINTER_KEY, Pointer, StoredPointer

_READ_ATTEMPTS = 5


class PointerConflict(DeliveryError):
    """The store changed since it was read: someone else wrote it. Never overwrite; the
    delivery stops and is retried from a fresh read."""


class KeyValueStorePointer:
    """The ``live`` key of one store, read and written with a compare-and-set."""

    def __init__(self, client: Any, kvs_arn: str, key: str = POINTER_KEY) -> None:
        self._client = client
        self._arn = kvs_arn
        self._key = key

    @property
    def arn(self) -> str:
        return self._arn

    def read(self) -> StoredPointer:
        """The pointer (``None``: the store has none yet) and the ETag it was read at. A
        value that is not a pointer raises :class:`~difusion.versions.PointerError`: the
        function serves 503 for it, and nothing should guess what it meant."""
        for _ in range(_READ_ATTEMPTS):
            before = self._etag()
            try:
                value: str | None = self._client.get_key(KvsARN=self._arn, Key=self._key)["Value"]
            except ClientError as exc:
                if _code(exc) != "ResourceNotFoundException":
                    raise
                value = None
            if self._etag() == before:
                return StoredPointer(None if value is None else Pointer.from_text(value), before)
        raise PointerConflict(f"{self._arn} kept changing while its pointer was read")

    def write(self, pointer: Pointer, if_match: str) -> str:
        """Store ``pointer`` if the store is still at ``if_match``; the new ETag. A write
        whose answer was lost and that the SDK retried finds the store changed: when it now
        holds exactly this pointer, the write was ours and it succeeded."""
        text = pointer.to_text()
        try:
            response = self._client.put_key(
                KvsARN=self._arn, Key=self._key, Value=text, IfMatch=if_match
            )
        except ClientError as exc:
            if _code(exc) != "ConflictException":
                raise
            now = self.read()
            if now.pointer is not None and now.pointer.to_text() == text:
                return now.etag
            raise PointerConflict(
                f"{self._arn} changed since it was read (ETag {if_match}): not overwritten"
            ) from None
        return str(response["ETag"])

    def _etag(self) -> str:
        return str(self._client.describe_key_value_store(KvsARN=self._arn)["ETag"])


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
