"""The window on the emulator: the very Step Functions definition opens and closes it."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import boto3
import pytest

from difusion.generator import SeriesSpec, generate_series
from difusion.local.pipeline import LocalPipeline, PipelineOptions
from difusion.models import DeliveryRequest
from difusion.window import PublicationWindow

pytestmark = pytest.mark.integration


@pytest.fixture
def windowed(_session_pipeline):
    """A pipeline whose window is set by each test (it provisions anew)."""
    pipeline, state = _session_pipeline
    state["used"] = True

    def provision(opening_in: float, open_for: float, grace: float = 2) -> LocalPipeline:
        now = datetime.now().astimezone()
        opening = now + timedelta(seconds=opening_in)
        pipeline.options = PipelineOptions(
            visibility_timeout=pipeline.options.visibility_timeout,
            max_attempts=pipeline.options.max_attempts,
            window=PublicationWindow(
                opening, opening + timedelta(seconds=open_for), timedelta(seconds=grace)
            ),
        )
        pipeline.reset()
        return pipeline

    yield provision
    from tests.integration.conftest import OPTIONS

    pipeline.options = OPTIONS


def _wait_until(moment: datetime) -> None:
    time.sleep(max((moment - datetime.now().astimezone()).total_seconds(), 0) + 0.3)


def _wait_for_window(pipeline, state: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pipeline.ledger.window().state == state:
            return
        time.sleep(0.2)
    raise AssertionError(f"window never became {state}")


def _settle_until(pipeline, condition, timeout: float = 30) -> None:
    """Let the pipeline work until ``condition`` holds (the timer acts on its own clock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pipeline.settle()
        if condition():
            return
        time.sleep(0.3)
    execution = (
        boto3.session.Session()
        .client("stepfunctions")
        .describe_execution(executionArn=pipeline.deployment.timer_execution_arn)
    )
    raise AssertionError(
        "the pipeline did not get there in time: "
        f"window={pipeline.ledger.window()}, timer={execution['status']}, "
        f"errors={pipeline.dispatcher.handler_errors[-3:]}, "
        f"deliveries={pipeline.ledger.items('DELIVERY#')}, "
        f"sign dead letters={pipeline.dead_letters('sign')}, "
        f"held={[s.get('held_reason') for s in pipeline.ledger.items('SNAPSHOT#')]}"
    )


def _buckets(pipeline):
    return {
        d.difusor_id: pipeline.site_objects(d.difusor_id) for d in pipeline.deployment.difusores
    }


def test_a_snapshot_before_the_opening_is_signed_but_held_then_released_at_the_opening(
    windowed, packages
):
    pipeline = windowed(opening_in=25, open_for=120)
    # Before the opening: processing is allowed, publishing is not
    record = pipeline.process(packages[0])
    assert record["status"] == "accepted"
    assert "held_at" in record
    assert all(objects == {} for objects in _buckets(pipeline).values())
    assert pipeline.ledger.items("DELIVERY#") == []
    assert pipeline.ledger.window().state == "before_opening"
    # At the opening the timer opens the window and releases the newest snapshot
    _wait_for_window(pipeline, "open")
    _settle_until(pipeline, lambda: len(pipeline.ledger.items("DELIVERY#")) == 3)
    deliveries = pipeline.ledger.items("DELIVERY#")
    assert len(deliveries) == 3 and {d["status"] for d in deliveries} == {"delivered"}
    opening = pipeline.deployment.window.opening
    assert all(datetime.fromisoformat(d["started_at"]) >= opening for d in deliveries)
    for objects in _buckets(pipeline).values():
        assert objects  # published now


def test_a_delivery_that_reaches_replicate_early_is_held_not_published(windowed, packages):
    pipeline = windowed(opening_in=30, open_for=120)
    pipeline.process(packages[0])
    head = pipeline.ledger.head()
    difusor = pipeline.deployment.difusores[0]
    # Whatever sends it (a bug, a replayed message), replicate checks the window itself
    request = DeliveryRequest.for_head(
        pipeline.deployment.election, difusor.difusor_id, head, reason="stray"
    )
    boto3.session.Session().client("sqs").send_message(
        QueueUrl=pipeline.deployment.delivery_queue_url,
        MessageBody=json.dumps(request.to_json()),
        MessageGroupId=difusor.difusor_id,
        MessageDeduplicationId="stray-1",
    )
    pipeline.settle()
    [delivery] = pipeline.ledger.items("DELIVERY#")
    assert delivery["status"] == "held"
    assert "opens at" in delivery["detail"]
    assert pipeline.site_objects(difusor.difusor_id) == {}


def test_at_the_close_only_the_final_cut_within_grace_is_published_then_nothing(windowed, tmp_path):
    pipeline = windowed(opening_in=0, open_for=8, grace=4)
    window = pipeline.deployment.window
    tz = ZoneInfo(pipeline.deployment.time_zone)  # package names carry local time
    spec = SeriesSpec.small(cuts=1)

    def package(cut: datetime) -> Path:
        snapshot = generate_series(spec)[0]
        snapshot.cut_time = cut.astimezone(tz).replace(second=0, microsecond=0)
        return snapshot.write_package(tmp_path / cut.strftime("%H%M%S"))

    first_cut = window.opening - timedelta(minutes=2)
    first = pipeline.process(package(first_cut))
    assert first["status"] == "accepted", (
        first.get("rejection_code"),
        first.get("rejection_reason"),
    )
    # The timer closes the window
    _wait_for_window(pipeline, "closed")
    # A final cut taken before the close, arriving within the grace period: published
    final = pipeline.process(package(window.opening - timedelta(minutes=1)))
    assert final["status"] == "accepted", (
        final.get("rejection_code"),
        final.get("rejection_reason"),
    )
    published = {
        d["difusor_id"]: d for d in pipeline.ledger.items(f"DELIVERY#{final['snapshot_id']}#")
    }
    assert {d["status"] for d in published.values()} == {"delivered"}
    # A cut taken after the close is refused, whenever it arrives
    after_close = pipeline.process(package(window.closing + timedelta(minutes=1)))
    assert after_close["status"] == "rejected"
    assert after_close["rejection_code"] == "window_closed"
    # After the grace period nothing more is published
    _wait_until(window.closing + window.grace)
    before = _buckets(pipeline)
    too_late = pipeline.process(package(window.opening))
    assert too_late["rejection_code"] == "window_closed"
    assert "grace" in too_late["rejection_reason"]
    assert _buckets(pipeline) == before
    execution = (
        boto3.session.Session()
        .client("stepfunctions")
        .describe_execution(executionArn=pipeline.deployment.timer_execution_arn)
    )
    assert execution["status"] == "SUCCEEDED"


def test_an_operator_closes_early_and_later_cuts_are_refused(windowed, tmp_path, capsys):
    from difusion.cli import main

    pipeline = windowed(opening_in=0, open_for=600, grace=1)
    args = ["--table", pipeline.deployment.ledger_table, "--election", pipeline.deployment.election]
    assert main(["window", "close", *args, "--reason", "100% de actas registradas"]) == 0
    record = pipeline.ledger.window()
    assert record.state == "closed" and record.closed_early
    assert main(["window", "status", *args]) == 0
    assert "closed" in capsys.readouterr().out
    # Closing again is refused with a clear message
    assert main(["window", "close", *args, "--reason", "otra vez"]) == 2
    assert "not open" in capsys.readouterr().err
    # A cut after the early close is refused
    tz = ZoneInfo(pipeline.deployment.time_zone)
    snapshot = generate_series(SeriesSpec.small(cuts=1))[0]
    snapshot.cut_time = (
        (record.closed_at + timedelta(minutes=1)).astimezone(tz).replace(second=0, microsecond=0)
    )
    late = pipeline.process(snapshot.write_package(tmp_path))
    assert late["rejection_code"] == "window_closed"
    assert all(objects == {} for objects in _buckets(pipeline).values())
