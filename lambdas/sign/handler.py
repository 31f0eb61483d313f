"""Sign Lambda: chain, sign and fan out one validated snapshot (SQS FIFO, group per election)."""

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

from difusion.adapters.factory import sign_service, step_invocation
from difusion.adapters.idempotency import StepIdempotencyStore, held_context
from difusion.adapters.queues import Attempt, StepInvocation
from difusion.models import SignRequest
from difusion.settings import SignSettings

settings = SignSettings.from_env(os.environ)
logger = Logger()
tracer = Tracer()
metrics = Metrics()
idempotency = IdempotencyConfig(event_key_jmespath="[snapshot_id, package_sha256]")
persistence = StepIdempotencyStore(table_name=settings.idempotency_table)


@idempotent_function(
    data_keyword_argument="request", config=idempotency, persistence_store=persistence
)
def sign_snapshot(request: dict[str, Any]) -> dict[str, Any]:
    result = sign_service(settings).sign(SignRequest.from_json(request))
    metrics.add_metric(name=f"Snapshots_{result.status}", unit=MetricUnit.Count, value=1)
    return result.to_json()


def record_handler(record: SQSRecord, step: StepInvocation) -> dict[str, Any]:
    request = json.loads(record.body)
    received = int(record.attributes.approximate_receive_count or 1)
    if request.get("action") == "release":
        # From the window timer at the opening. Repeats are harmless: each delivery it
        # sends is keyed by this release's id. A failure is the timer's to see (its
        # execution) and the deliveries' to record.
        with step.attempt(record.message_id, received, lambda _attempt, _error: None):
            return sign_service(settings).release(str(request["release_id"])).to_json()
    logger.append_keys(snapshot_id=request.get("snapshot_id"))
    if request.get("action") == "withdraw":
        # From `difusion snapshot withdraw`: one at a time with signing (same group).
        snapshot_id = str(request["snapshot_id"])

        def record_withdrawal_failure(attempt: Attempt, error: str) -> None:
            sign_service(settings).record_withdrawal_failure(snapshot_id, attempt.final, error)

        with step.attempt(record.message_id, received, record_withdrawal_failure):
            service = sign_service(settings)
            return service.withdraw(snapshot_id, str(request["reason"])).to_json()

    def record_failure(attempt: Attempt, error: str) -> None:
        sign_service(settings).record_failure(
            SignRequest.from_json(request), attempt.number, attempt.final, error
        )

    with (
        step.attempt(record.message_id, received, record_failure),
        step.holding(record.raw_event, persistence.in_progress()),
    ):
        return sign_snapshot(request=request)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(held_context(context, settings.hold.hold_seconds))
    step = step_invocation(settings, context)
    # A batch whose every record failed is reported record by record, not raised: a raised
    # batch would wait out the queue's whole visibility timeout before it is tried again.
    processor = SqsFifoPartialProcessor()
    processor.raise_on_entire_batch_failure = False
    response = process_partial_response(
        event=event,
        record_handler=partial(record_handler, step=step),
        processor=processor,
        context=context,
    )
    step.retry_soon(event, response)  # not after the visibility timeout
    return response
