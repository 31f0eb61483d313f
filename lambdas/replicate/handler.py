"""Replicate Lambda: deliver one signed snapshot to one difusor (SQS FIFO, group per difusor)."""

from __future__ import annotations

import json
import os
from functools import partial
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.typing import LambdaContext

from difusion.adapters.factory import replicate_service, step_invocation
from difusion.adapters.idempotency import StepIdempotencyStore, held_context
from difusion.adapters.queues import Attempt, StepInvocation
from difusion.models import DeliveryRequest
from difusion.settings import ReplicateSettings

settings = ReplicateSettings.from_env(os.environ)
logger = Logger()
tracer = Tracer()
metrics = Metrics()
idempotency = IdempotencyConfig(event_key_jmespath="request.[difusor_id, snapshot_id, reason]")
persistence = StepIdempotencyStore(table_name=settings.idempotency_table)


@idempotent_function(
    data_keyword_argument="delivery", config=idempotency, persistence_store=persistence
)
def deliver(delivery: dict[str, Any]) -> dict[str, Any]:
    request = DeliveryRequest.from_json(delivery["request"])
    outcome = replicate_service(settings).deliver(request, attempt=int(delivery["attempt"]))
    # Flushed per delivery, so every metric carries its difusor: the dashboard and each
    # difusor's 20-minute freshness alarm read them by that dimension.
    metrics.add_dimension(name="difusor", value=request.difusor_id)
    metrics.add_metric(name=f"Deliveries_{outcome.status}", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ObjectsCopied", unit=MetricUnit.Count, value=outcome.objects_copied)
    if outcome.status == "delivered":
        metrics.add_metric(name="Delivered", unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()
    return outcome.to_json()


def record_handler(record: SQSRecord, step: StepInvocation) -> dict[str, Any]:
    request = json.loads(record.body)
    logger.append_keys(difusor_id=request.get("difusor_id"), snapshot_id=request.get("snapshot_id"))

    def record_failure(attempt: Attempt, error: str) -> None:
        replicate_service(settings).record_failure(
            DeliveryRequest.from_json(request), attempt.number, attempt.final, error
        )

    received = int(record.attributes.approximate_receive_count or 1)
    # While it works: its message, its idempotency record and the difusor's lease, held
    # one short hold at a time; a worker that dies lets all three go within one hold.
    lease = replicate_service(settings).hold_lease(DeliveryRequest.from_json(request))
    with (
        step.attempt(record.message_id, received, record_failure) as attempt,
        step.holding(record.raw_event, persistence.in_progress(), lease),
    ):
        return deliver(delivery={"request": request, "attempt": attempt.number})


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(held_context(context, settings.hold.hold_seconds))
    step = step_invocation(settings, context)
    # A failing difusor holds back only its own message group, never the others in the
    # batch. A batch whose every record failed is reported record by record, not raised: a
    # raised batch would wait out the queue's whole visibility timeout. One processor per
    # invocation: it holds the batch's records while it runs.
    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    processor.raise_on_entire_batch_failure = False
    response = process_partial_response(
        event=event,
        record_handler=partial(record_handler, step=step),
        processor=processor,
        context=context,
    )
    step.retry_soon(event, response)  # not after the visibility timeout
    return response
