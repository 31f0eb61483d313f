"""The queues between the pipeline's steps, and the retry of a failed message."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from difusion.adapters.heartbeat import Heartbeat, HoldTimes, MessageHold, Renewal
from difusion.errors import RetryLater
from difusion.models import DeliveryRequest, SignRequest
from difusion.topology import RetrySchedule

logger = logging.getLogger(__name__)

_SEND_BATCH = 10  # SQS's limit per SendMessageBatch
_MAX_VISIBILITY_SECONDS = 43_200  # SQS's limit: 12 hours
# Powertools' "already in progress": another attempt holds the step's idempotency record
# (it is running, or it died and its in-progress window has not ended yet).
_IN_PROGRESS_ERRORS = ("IdempotencyAlreadyInProgressError",)
_RECORD_TRIES = 3  # each with botocore's own retries under it


class SignQueue:
    """Ingest → sign. One message group per election: the chain is built one at a time."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url

    def send(self, request: SignRequest) -> None:
        self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=json.dumps(request.to_json(), sort_keys=True),
            MessageGroupId=request.election,
            MessageDeduplicationId=f"{request.snapshot_id}.{request.package_sha256[:32]}",
        )

    def send_withdrawal(self, election: str, snapshot_id: str, reason: str) -> None:
        """Ask sign to withdraw ``snapshot_id``, in the chain's own order (its group)."""
        self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=json.dumps(
                {"action": "withdraw", "snapshot_id": snapshot_id, "reason": reason},
                sort_keys=True,
            ),
            MessageGroupId=election,
            MessageDeduplicationId=hashlib.sha256(
                f"withdraw.{snapshot_id}.{reason}".encode()
            ).hexdigest(),
        )


class DeliveryQueue:
    """Sign → replicate. One message group per difusor: each difusor's deliveries stay in
    order while difusores proceed in parallel, and one stuck difusor blocks only itself."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url

    def send(self, requests: Sequence[DeliveryRequest]) -> None:
        for start in range(0, len(requests), _SEND_BATCH):
            batch = requests[start : start + _SEND_BATCH]
            response = self._sqs.send_message_batch(
                QueueUrl=self._url,
                Entries=[
                    {
                        "Id": str(i),
                        "MessageBody": json.dumps(r.to_json(), sort_keys=True),
                        "MessageGroupId": r.difusor_id,
                        "MessageDeduplicationId": _dedup_id(r),
                    }
                    for i, r in enumerate(batch)
                ],
            )
            if response.get("Failed"):
                raise RuntimeError(f"could not enqueue deliveries: {response['Failed']}")

    def resend(self, request: DeliveryRequest, period: str) -> None:
        """Send ``request`` again, in a message group of its own: the difusor's group may be
        held by the message a dead worker took (invisible until its visibility timeout),
        and a FIFO group waits behind it. The ledger keeps the order instead: the lease,
        and a published sequence that only moves forward. Once per ``period``."""
        self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=json.dumps(request.to_json(), sort_keys=True),
            MessageGroupId=f"{request.difusor_id}.catch-up",
            MessageDeduplicationId=hashlib.sha256(
                f"{_dedup_id(request)}.catch-up.{period}".encode()
            ).hexdigest(),
        )


def _dedup_id(request: DeliveryRequest) -> str:
    """One delivery per snapshot, difusor and reason, within SQS's deduplication interval."""
    key = f"{request.snapshot_id}.{request.difusor_id}.{request.reason}"
    return hashlib.sha256(key.encode()).hexdigest()


def queue_url_of(arn: str) -> str:
    """``arn:aws:sqs:REGION:ACCOUNT:NAME`` → the queue's URL (the form SQS accepts anywhere;
    the client sends it to its own endpoint)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[:3] != ["arn", "aws", "sqs"]:
        raise ValueError(f"not an SQS queue ARN: {arn!r}")
    region, account, name = parts[3], parts[4], parts[5]
    return f"https://sqs.{region}.amazonaws.com/{account}/{name}"


class FailedMessages:
    """Brings failed messages back soon, instead of after the queue's visibility timeout.

    The queues keep a visibility timeout of six times the function's timeout (AWS's advice,
    so a message is not handed out twice while it is being worked on). A message the
    function reports as failed would then wait that long — 90 minutes for a delivery, with
    its difusor's whole FIFO group held behind it. ``ChangeMessageVisibility`` on the
    receipt makes it visible again after the retry schedule's delay; every receive still
    counts towards the queue's ``maxReceiveCount`` and the dead-letter queue.
    """

    def __init__(
        self,
        sqs: Any,
        schedule: RetrySchedule,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._sqs = sqs
        self._schedule = schedule
        self._rand = rand

    def hold(self, record: Mapping[str, Any]) -> MessageHold:
        """The hold on ``record``'s message that a step's heartbeat renews."""
        return MessageHold(
            self._sqs, queue_url_of(record["eventSourceARN"]), record["receiptHandle"]
        )

    def retry_soon(
        self,
        event: Mapping[str, Any],
        response: Mapping[str, Any],
        not_before: Mapping[str, float] | None = None,
    ) -> list[int]:
        """Set each failed record's delay; returns the delays set, in record order.

        ``not_before`` names records that cannot succeed before some seconds have passed
        (a lease, another attempt's in-progress window): they return then, not sooner."""
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        waits = not_before or {}
        delays = []
        for record in event.get("Records", []):
            if record.get("messageId") not in failed:
                continue
            received = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
            delay = self._schedule.delay(received, self._rand)
            wait = waits.get(record["messageId"])
            if wait is not None:
                # After the wait, plus the schedule's jitter so waiters do not return at once.
                delay = min(max(delay, math.ceil(wait) + delay), _MAX_VISIBILITY_SECONDS)
            try:
                self._sqs.change_message_visibility(
                    QueueUrl=queue_url_of(record["eventSourceARN"]),
                    ReceiptHandle=record["receiptHandle"],
                    VisibilityTimeout=delay,
                )
            except ClientError as exc:
                # The message still returns, after the queue's visibility timeout.
                logger.warning(
                    "could not shorten a failed message's wait",
                    extra={"message_id": record.get("messageId"), "error": str(exc)},
                )
                continue
            delays.append(delay)
        return delays


@dataclass(frozen=True)
class Attempt:
    """One receive of a step's message: which one, and whether it is the last the queue
    allows before the dead-letter queue."""

    number: int
    final: bool


FailureRecorder = Callable[[Attempt, str], None]


class StepInvocation:
    """One invocation of a step (ingest, sign, replicate) and its messages' fate.

    Every attempt that fails is recorded where the step's work is recorded (the ledger),
    whatever failed — the idempotency layer, a read, a lease, the work itself — so nothing
    ends in the dead-letter queue without the ledger saying so; the last attempt is
    recorded as final. A failed message returns after the retry schedule's delay, or when
    what it waits for ends (:class:`RetryLater`, another attempt in progress).
    """

    def __init__(
        self,
        failed: FailedMessages,
        max_attempts: int,
        in_progress_seconds: float,
        hold: HoldTimes | None = None,
        timeout_seconds: float = math.inf,
    ) -> None:
        self._failed = failed
        self._max_attempts = max_attempts
        self._in_progress_seconds = in_progress_seconds
        self._hold = hold or HoldTimes()
        self._timeout = timeout_seconds
        self.not_before: dict[str, float] = {}

    def holding(
        self, record: Mapping[str, Any], *renewals: Renewal
    ) -> AbstractContextManager[None]:
        """Hold ``record``'s message (and what ``renewals`` renew) a short while at a
        time while the step works on it, up to the step's timeout (:mod:`.heartbeat`). The
        message is renewed last: after a crash it returns once the rest has lapsed, and its
        retry does not find the dead attempt's record still in progress."""
        beats = Heartbeat([*renewals, self._failed.hold(record)], self._hold, self._timeout)
        return beats.holding()

    @contextmanager
    def attempt(
        self, message_id: str, receive_count: int, record_failure: FailureRecorder
    ) -> Iterator[Attempt]:
        attempt = Attempt(receive_count, receive_count >= self._max_attempts)
        try:
            yield attempt
        except Exception as exc:
            in_progress = type(exc).__name__ in _IN_PROGRESS_ERRORS
            if isinstance(exc, RetryLater):
                self.not_before[message_id] = exc.seconds
            elif in_progress:
                self.not_before[message_id] = self._in_progress_seconds
            # Another live attempt owns the record until it ends; only the last receive of
            # a message that keeps finding it so is this message's failure to record.
            if attempt.final or not in_progress:
                self._record(attempt, exc, record_failure)
            raise

    @staticmethod
    def _record(attempt: Attempt, exc: Exception, record_failure: FailureRecorder) -> None:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        logger.error(
            "step attempt failed",
            extra={"attempt": attempt.number, "final": attempt.final, "error": error},
        )
        for tries_left in reversed(range(_RECORD_TRIES)):
            try:
                record_failure(attempt, error)
                return
            except Exception as record_exc:  # the message is retried or dead-lettered anyway
                if tries_left == 0:
                    logger.error(
                        "could not record a failed attempt",
                        extra={"error": error, "record_error": f"{type(record_exc).__name__}"},
                    )

    def retry_soon(self, event: Mapping[str, Any], response: Mapping[str, Any]) -> list[int]:
        return self._failed.retry_soon(event, response, self.not_before)
