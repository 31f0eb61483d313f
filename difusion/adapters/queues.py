"""The FIFO queues between the pipeline's steps."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from difusion.models import DeliveryRequest, SignRequest

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
