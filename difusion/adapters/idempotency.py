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

from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import (
    STATUS_CONSTANTS,
    DataRecord,
)

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

    def _put_record(self, data_record: DataRecord) -> None:
        try:
            super()._put_record(data_record)
        except IdempotencyItemAlreadyExistsError as exc:
            if not is_own_write(data_record, exc.old_data_record):
                raise
