"""The institute's template deploys what ``difusion.topology`` says, which is what the
embedded default provisions (tests/integration/test_retry.py): they cannot drift apart."""

from __future__ import annotations

import inspect
import json

import pytest

from difusion import topology
from difusion.local.chaos import NightSpec
from difusion.local.pipeline import PipelineOptions
from difusion.local.provision import provision
from tests.infrastructure.templates import resources

pytestmark = pytest.mark.infrastructure


def _by_path(template, kind: str) -> dict[str, dict]:
    """Resources by construct id: ``QueuesIngestDeadLetters1A2B3C4D`` → ``IngestDeadLetters``
    (CDK's logical id is the construct path and an 8-character hash)."""
    return {
        logical_id[:-8].removeprefix("Queues").removeprefix("Tables"): r["Properties"]
        for logical_id, r in resources(template, kind).items()
    }


def test_queues_and_their_event_sources_are_the_topologys(institute, institute_config):
    queues = _by_path(institute, "AWS::SQS::Queue")
    names = {"ingest": "Ingest", "sign": "Sign", "deliveries": "Deliveries"}
    functions = {
        logical_id: r["Properties"]
        for logical_id, r in resources(institute, "AWS::Lambda::Function").items()
    }
    mappings = list(resources(institute, "AWS::Lambda::EventSourceMapping").values())
    for name, shape in topology.QUEUES.items():
        queue = queues[names[name]]
        assert queue["VisibilityTimeout"] == shape.visibility_timeout_seconds
        assert queue["MessageRetentionPeriod"] == topology.QUEUE_RETENTION_SECONDS
        assert bool(queue.get("FifoQueue")) is shape.fifo
        assert queue["RedrivePolicy"]["maxReceiveCount"] == institute_config.delivery_max_attempts
        dead = queues[f"{names[name]}DeadLetters"]
        assert dead["MessageRetentionPeriod"] == topology.DEAD_LETTER_RETENTION_SECONDS
    for mapping in mappings:
        props = mapping["Properties"]
        function = functions[props["FunctionName"]["Ref"]]
        name = json.dumps(function["Description"])
        shape = next(q for q in topology.QUEUES.values() if q.consumer in name)
        assert props["BatchSize"] == shape.batch_size
        scaling = props.get("ScalingConfig", {}).get("MaximumConcurrency")
        assert scaling == shape.max_concurrency
        assert function["Timeout"] == topology.FUNCTIONS[shape.consumer].timeout_seconds
    assert institute_config.delivery_max_attempts == topology.DEFAULT_MAX_ATTEMPTS


def test_tables_have_the_topologys_keys(institute):
    tables = _by_path(institute, "AWS::DynamoDB::Table")
    for name, keys in topology.TABLES.items():
        table = tables[name.title()]
        assert [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]] == list(keys)
    ttl = tables["Idempotency"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": topology.IDEMPOTENCY_TTL_ATTRIBUTE, "Enabled": True}


def test_the_embedded_default_lets_a_message_be_received_as_often_as_the_stacks(
    institute_config,
):
    # Given what the stacks deploy as every queue's maxReceiveCount
    deployed = institute_config.delivery_max_attempts
    # Then the embedded default (demo, tests, the fault and crash tiers) provisions the same
    assert PipelineOptions().max_attempts == deployed
    assert NightSpec().max_attempts == deployed
    assert inspect.signature(provision).parameters["max_attempts"].default == deployed
