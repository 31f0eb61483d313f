"""The queues between the pipeline's steps, and the retry of a failed message."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from difusion.models import DeliveryRequest, SignRequest
from difusion.topology import RetrySchedule

logger = logging.getLogger(__name__)

_SEND_BATCH = 10  # SQS's limit per SendMessageBatch


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

    def retry_soon(self, event: Mapping[str, Any], response: Mapping[str, Any]) -> list[int]:
        """Set each failed record's delay; returns the delays set, in record order."""
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        delays = []
        for record in event.get("Records", []):
            if record.get("messageId") not in failed:
                continue
            received = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
            delay = self._schedule.delay(received, self._rand)
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
