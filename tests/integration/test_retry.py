"""A failed delivery is tried again within a minute with the stacks' own settings: the
queue keeps its 90-minute visibility timeout, and the handler brings the failed message
back after the retry schedule's delay instead."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from difusion import topology
from difusion.adapters.sessions import new_session
from difusion.local.pipeline import LocalPipeline, PipelineOptions
from difusion.local.provision import account_session
from tests.integration.conftest import OPTIONS

pytestmark = pytest.mark.integration


@pytest.fixture
def election_night(_session_pipeline):
    """The pipeline provisioned with production settings: no time compression."""
    pipeline, state = _session_pipeline
    state["used"] = True
    pipeline.options = PipelineOptions(time_scale=1.0, max_attempts=topology.DEFAULT_MAX_ATTEMPTS)
    pipeline.reset()
    yield pipeline
    pipeline.options = OPTIONS


def _site_policy(s3, bucket: str) -> str:
    return str(s3.get_bucket_policy(Bucket=bucket)["Policy"])


def test_a_failed_delivery_is_retried_within_a_minute_with_production_settings(
    election_night: LocalPipeline, packages
):
    pipeline = election_night
    sqs = new_session().client("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=pipeline.deployment.delivery_queue_url,
        AttributeNames=["VisibilityTimeout", "RedrivePolicy"],
    )["Attributes"]
    # Given the deliveries queue exactly as the stack makes it (6 × 900 s)
    assert int(attributes["VisibilityTimeout"]) == 5400
    assert '"maxReceiveCount": 5' in attributes["RedrivePolicy"]
    # ...and one difusor whose site bucket is gone for a moment
    target = pipeline.deployment.difusores[0]
    s3 = account_session(target.account_id).client("s3")
    policy = _site_policy(s3, target.bucket)
    s3.delete_bucket(Bucket=target.bucket)
    failed_at: list[float] = []

    def restore_after_the_first_failure() -> None:
        if failed_at:
            return
        record = next(
            (d for d in pipeline.ledger.items("DELIVERY#") if d["difusor_id"] == target.difusor_id),
            None,
        )
        if record and record.get("status") == "retrying":
            assert "NoSuchBucket" in record["last_error"]
            failed_at.append(time.monotonic())
            s3.create_bucket(Bucket=target.bucket)
            s3.put_bucket_policy(Bucket=target.bucket, Policy=policy)

    # When a snapshot is published
    pipeline.upload(packages[0])
    pipeline.dispatcher.run_until_idle(timeout=120, on_tick=restore_after_the_first_failure)
    settled = time.monotonic()

    # Then its first attempt failed, and the second, within a minute, delivered it
    assert failed_at, "the first attempt did not fail"
    delivery = next(
        d for d in pipeline.ledger.items("DELIVERY#") if d["difusor_id"] == target.difusor_id
    )
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 2
    retried_after = (
        datetime.fromisoformat(delivery["finished_at"])
        - datetime.fromisoformat(delivery["failed_at"])
    ).total_seconds()
    assert retried_after < 60
    assert settled - failed_at[0] < 60
    # ...the other difusores were not held back, and nothing is in a dead-letter queue
    for difusor in pipeline.deployment.difusores[1:]:
        assert pipeline.site_objects(difusor.difusor_id)
    assert pipeline.dead_letters("deliveries") == []
    assert pipeline.site_objects(target.difusor_id)


def test_the_emulator_provisions_the_stacks_settings(election_night: LocalPipeline):
    """Queues and tables as ``difusion.topology`` says, the same values the stacks deploy
    (tests/infrastructure/test_topology.py holds the templates to them)."""
    pipeline = election_night
    deployment = pipeline.deployment
    sqs = new_session().client("sqs")
    urls = {
        "ingest": deployment.ingest_queue_url,
        "sign": deployment.sign_queue_url,
        "deliveries": deployment.delivery_queue_url,
    }
    for name, shape in topology.QUEUES.items():
        attributes = sqs.get_queue_attributes(QueueUrl=urls[name], AttributeNames=["All"])[
            "Attributes"
        ]
        assert int(attributes["VisibilityTimeout"]) == shape.visibility_timeout_seconds, name
        assert int(attributes["MessageRetentionPeriod"]) == topology.QUEUE_RETENTION_SECONDS
        assert (attributes.get("FifoQueue") == "true") is shape.fifo
        redrive = json.loads(attributes["RedrivePolicy"])
        assert int(redrive["maxReceiveCount"]) == topology.DEFAULT_MAX_ATTEMPTS
    dynamodb = new_session().client("dynamodb")
    for name, keys in topology.TABLES.items():
        table = getattr(deployment, f"{name}_table")
        schema = dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]
        assert [(k["AttributeName"], k["KeyType"]) for k in schema] == list(keys)
    ttl = dynamodb.describe_time_to_live(TableName=deployment.idempotency_table)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == topology.IDEMPOTENCY_TTL_ATTRIBUTE
    # Lambda's event source mappings, played by the dispatcher, take the stacks' batch sizes
    routes = {r.queue_url: r.batch_size for r in pipeline.dispatcher._routes}
    assert routes == {urls[n]: q.batch_size for n, q in topology.QUEUES.items()}
