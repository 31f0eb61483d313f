"""A step's failed attempts: recorded in the ledger whatever failed, and returned when what
they wait for has ended (a lease, another attempt's in-progress window)."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from difusion.adapters.idempotency import is_own_write
from difusion.adapters.queues import Attempt, FailedMessages, StepInvocation
from difusion.errors import RetryLater
from difusion.topology import RETRY

ARN = "arn:aws:sqs:us-east-1:123456789012:difusion-deliveries.fifo"


class FakeSqs:
    def __init__(self) -> None:
        self.visibility: dict[str, int] = {}

    def change_message_visibility(self, **kwargs: Any) -> None:
        self.visibility[kwargs["ReceiptHandle"]] = kwargs["VisibilityTimeout"]


def _event(*received: int) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"h{i}",
                "attributes": {"ApproximateReceiveCount": str(n)},
                "eventSourceARN": ARN,
            }
            for i, n in enumerate(received)
        ]
    }


def _failed(*ids: str) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}


def _step(sqs: FakeSqs, max_attempts: int = 5, in_progress: float = 900) -> StepInvocation:
    return StepInvocation(FailedMessages(sqs, RETRY, rand=lambda: 0.0), max_attempts, in_progress)


def _run(step: StepInvocation, message: str, received: int, exc: Exception) -> list:
    recorded: list[tuple[Attempt, str]] = []
    record = lambda a, e: recorded.append((a, e))  # noqa: E731
    with pytest.raises(type(exc)), step.attempt(message, received, record):
        raise exc
    return recorded


@pytest.mark.parametrize(
    ("received", "final"), [(1, False), (4, False), (5, True), (7, True)], ids=str
)
def test_any_failure_is_recorded_and_the_last_receive_is_final(received, final):
    recorded = _run(_step(FakeSqs()), "m0", received, KeyError("registry"))
    assert recorded == [(Attempt(received, final), "KeyError: 'registry'")]


def test_a_step_waiting_for_a_lease_returns_when_the_lease_ends_not_before():
    sqs = FakeSqs()
    step = _step(sqs)
    _run(step, "m0", 1, RetryLater("busy", 120))
    step.retry_soon(_event(1, 1), _failed("m0", "m1"))
    # after the lease (120 s) plus the schedule's own delay; the other one as scheduled
    assert sqs.visibility["h0"] >= 120
    assert sqs.visibility["h1"] == RETRY.delay(1, lambda: 0.0) < 10


def test_another_attempt_in_progress_is_waited_out_and_only_recorded_when_final():
    sqs = FakeSqs()
    step = _step(sqs, max_attempts=3, in_progress=9)
    busy = IdempotencyAlreadyInProgressError("in progress")
    # Not this message's failure while another attempt owns the record
    assert _run(step, "m0", 1, busy) == []
    # Its last receive is: the ledger says it gave up
    [(attempt, error)] = _run(step, "m1", 3, busy)
    assert attempt.final and "AlreadyInProgress" in error
    step.retry_soon(_event(1, 3), _failed("m0", "m1"))
    assert sqs.visibility["h0"] >= 9 and sqs.visibility["h1"] >= 9


def test_a_recorder_that_keeps_failing_never_hides_the_steps_own_error():
    step = _step(FakeSqs())
    calls = []

    def broken(attempt: Attempt, error: str) -> None:
        calls.append(attempt)
        raise ConnectionError("ledger down")

    with pytest.raises(ValueError, match="the step's own"), step.attempt("m0", 5, broken):
        raise ValueError("the step's own")
    assert len(calls) == 3  # tried more than once: a final record is worth it


def test_the_wait_never_passes_sqss_twelve_hours():
    sqs = FakeSqs()
    step = _step(sqs)
    _run(step, "m0", 1, RetryLater("far", 10**6))
    step.retry_soon(_event(1), _failed("m0"))
    assert sqs.visibility["h0"] == 43_200


def _record(key: str, status: str, expiry: int, in_progress: int | None) -> DataRecord:
    return DataRecord(
        idempotency_key=key,
        status=status,
        expiry_timestamp=expiry,
        in_progress_expiry_timestamp=in_progress,
    )


def test_an_attempt_recognises_only_its_own_in_progress_record():
    mine = _record("k", "INPROGRESS", 4_000_000_000, 5_000_123)
    assert is_own_write(mine, _record("k", "INPROGRESS", 4_000_000_000, 5_000_123))
    # another attempt's: written at another millisecond
    assert not is_own_write(mine, _record("k", "INPROGRESS", 4_000_000_000, 5_000_124))
    assert not is_own_write(mine, _record("k", "COMPLETED", 4_000_000_000, 5_000_123))
    assert not is_own_write(mine, _record("other", "INPROGRESS", 4_000_000_000, 5_000_123))
    assert not is_own_write(mine, None)
    assert not is_own_write(_record("k", "INPROGRESS", 4_000_000_000, None), mine)
