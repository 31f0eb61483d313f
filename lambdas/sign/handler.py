"""Sign Lambda: chain, sign and fan out one validated snapshot (SQS FIFO, group per election)."""

from __future__ import annotations

import json
import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from difusion.adapters.factory import failed_messages, sign_service
from difusion.models import SignRequest
from difusion.settings import SignSettings

settings = SignSettings.from_env(os.environ)
logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = SqsFifoPartialProcessor()
# A batch whose every record failed is reported record by record, not raised: a raised
# batch would wait out the queue's whole visibility timeout before it is tried again.
processor.raise_on_entire_batch_failure = False
idempotency = IdempotencyConfig(event_key_jmespath="[snapshot_id, package_sha256]")
persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table)


@idempotent_function(
    data_keyword_argument="request", config=idempotency, persistence_store=persistence
)
def sign_snapshot(request: dict[str, Any]) -> dict[str, Any]:
    result = sign_service(settings).sign(SignRequest.from_json(request))
    metrics.add_metric(name=f"Snapshots_{result.status}", unit=MetricUnit.Count, value=1)
    return result.to_json()


def record_handler(record: SQSRecord) -> dict[str, Any]:
    request = json.loads(record.body)
    if request.get("action") == "release":
        # From the window timer at the opening. Repeats are harmless: each delivery it
        # sends is keyed by this release's id.
        result = sign_service(settings).release(str(request["release_id"]))
        return result.to_json()
    logger.append_keys(snapshot_id=request.get("snapshot_id"))
    return sign_snapshot(request=request)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    failed_messages(settings).retry_soon(event, response)  # not after the visibility timeout
    return response
