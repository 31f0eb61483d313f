"""Ingest Lambda: S3 Object Created (EventBridge → SQS) → validate, hash, stage, draft."""

from __future__ import annotations

import json
import os
from functools import partial
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes import S3EventBridgeNotificationEvent
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.typing import LambdaContext

from difusion.adapters.factory import ingest_service, step_invocation
from difusion.adapters.idempotency import StepIdempotencyStore, held_context
from difusion.adapters.queues import Attempt, StepInvocation
from difusion.settings import IngestSettings

settings = IngestSettings.from_env(os.environ)
logger = Logger()
tracer = Tracer()
metrics = Metrics()
# S3 notifies twice for a multipart upload and SQS may redeliver: one object version is
# ingested once. The origin bucket is versioned, so a re-upload under the same name is a
# new version (and gets its own answer).
idempotency = IdempotencyConfig(event_key_jmespath="[bucket, key, version_id, etag]")
persistence = StepIdempotencyStore(table_name=settings.idempotency_table)


@idempotent_function(
    data_keyword_argument="notification", config=idempotency, persistence_store=persistence
)
def ingest_package(notification: dict[str, str]) -> dict[str, Any]:
    result = ingest_service(settings).ingest(notification["key"], notification["version_id"])
    metrics.add_metric(name=f"Packages_{result.status}", unit=MetricUnit.Count, value=1)
    return result.to_json()


def record_handler(record: SQSRecord, step: StepInvocation) -> dict[str, Any]:
    event = S3EventBridgeNotificationEvent(json.loads(record.body))
    detail = event.detail
    notification = {
        "bucket": detail.bucket.name,
        "key": detail.object.key,
        "version_id": detail.object.get("version-id") or "",
        "etag": detail.object.etag,
    }
    logger.append_keys(object_key=notification["key"])

    def record_failure(attempt: Attempt, error: str) -> None:
        ingest_service(settings).record_failure(
            notification["key"], attempt.number, attempt.final, error
        )

    received = int(record.attributes.approximate_receive_count or 1)
    with (
        step.attempt(record.message_id, received, record_failure),
        step.holding(record.raw_event, persistence.in_progress()),
    ):
        return ingest_package(notification=notification)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(held_context(context, settings.hold.hold_seconds))
    step = step_invocation(settings, context)
    # A batch whose every record failed is reported record by record, not raised: a raised
    # batch would wait out the queue's whole visibility timeout before it is tried again.
    # One processor per invocation: it holds the batch's records while it runs.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(
        event=event,
        record_handler=partial(record_handler, step=step),
        processor=processor,
        context=context,
    )
    step.retry_soon(event, response)  # not after the visibility timeout
    return response
