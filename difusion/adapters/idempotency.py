"""Powertools idempotency records that survive a lost answer.

Powertools takes a step's idempotency record with a conditional ``PutItem`` ("no record, or
an expired one"). When DynamoDB executes that write but its answer is lost (a reset
connection, a read timeout), botocore sends it again; the retry fails its own condition on
the record the first attempt wrote, and Powertools reports the step as *already in
progress* — in every later receive too, until the in-progress window (the function's
remaining time) has passed. The message dead-letters and the step never runs.

This layer recognises its own write: the record it finds is ``INPROGRESS`` with exactly the
expiry and in-progress expiry this attempt wrote (milliseconds, computed once per attempt),
so it is the attempt's own and the step goes on. Any other record is someone else's, as
before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, cast

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import (
    STATUS_CONSTANTS,
    DataRecord,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from difusion.adapters.heartbeat import Renewal
from difusion.adapters.sessions import new_session


def is_own_write(mine: DataRecord, found: DataRecord | None) -> bool:
    """Whether ``found`` is the in-progress record that ``mine`` wrote."""
    return (
        found is not None
        and found.status == STATUS_CONSTANTS["INPROGRESS"]
        and mine.in_progress_expiry_timestamp is not None
        and found.idempotency_key == mine.idempotency_key
        and found.in_progress_expiry_timestamp == mine.in_progress_expiry_timestamp
        and found.expiry_timestamp == mine.expiry_timestamp
    )


class StepIdempotencyStore(DynamoDBPersistenceLayer):
    """``DynamoDBPersistenceLayer`` that takes a lost-answer retry of its own write as done.
    Its client reads service models through the shared loader (:mod:`.sessions`)."""

    def __init__(self, table_name: str, **kwargs: Any) -> None:
        if "boto3_client" not in kwargs:
            kwargs.setdefault("boto3_session", new_session())
        super().__init__(table_name, **kwargs)
        # The in-progress records each thread's current attempt wrote (see ``in_progress``).
        self._attempts = threading.local()

    def _put_record(self, data_record: DataRecord) -> None:
        try:
            super()._put_record(data_record)
        except IdempotencyItemAlreadyExistsError as exc:
            if not is_own_write(data_record, exc.old_data_record):
                raise
        written = getattr(self._attempts, "written", None)
        if written is not None and data_record.in_progress_expiry_timestamp is not None:
            written.append([data_record.idempotency_key, data_record.in_progress_expiry_timestamp])

    def in_progress(self, now: Callable[[], float] = time.time) -> Renewal:
        """The renewal of the in-progress record the calling thread's attempt writes next
        (for its heartbeat, which runs on a thread of its own). Powertools writes the record
        with the remaining time of the context it was given (:func:`held_context`: one
        hold); each renewal moves its in-progress expiry one hold from ``now``, as long as
        it is still this attempt's (in progress, with the expiry this attempt last set)."""
        written: list[list[Any]] = []
        self._attempts.written = written

        def renew(seconds: int) -> None:
            if not written:
                return  # not written yet (or the step is not idempotent)
            key, previous = written[-1]
            until = int((now() + seconds) * 1000)
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key=self._get_key(key),
                    UpdateExpression="SET #in_progress_expiry = :until",
                    ConditionExpression="#status = :in_progress AND #in_progress_expiry = :mine",
                    ExpressionAttributeNames={
                        "#status": self.status_attr,
                        "#in_progress_expiry": self.in_progress_expiry_attr,
                    },
                    ExpressionAttributeValues={
                        ":in_progress": {"S": STATUS_CONSTANTS["INPROGRESS"]},
                        ":mine": {"N": str(previous)},
                        ":until": {"N": str(until)},
                    },
                )
            except ClientError as exc:
                # Completed (or taken over by another attempt after it lapsed): not ours.
                if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    written.clear()
                    return
                raise
            written[-1][1] = until

        return renew


class HeldContext:
    """A Lambda context whose remaining time is at most one hold: Powertools takes it as
    the in-progress window of the step's idempotency record, which the heartbeat then
    renews (:meth:`StepIdempotencyStore.in_progress`). An attempt that dies leaves a record
    that lapses within one hold, not at the end of the function's whole timeout."""

    def __init__(self, context: Any, hold_seconds: float) -> None:
        self._context = context
        self._hold_millis = int(hold_seconds * 1000)

    def get_remaining_time_in_millis(self) -> int:
        return min(int(self._context.get_remaining_time_in_millis()), self._hold_millis)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def held_context(context: LambdaContext, hold_seconds: float) -> LambdaContext:
    """``context`` as Powertools' idempotency should see it (:class:`HeldContext`)."""
    return cast(LambdaContext, HeldContext(context, hold_seconds))
