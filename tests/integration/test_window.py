"""The window on the emulator: the very Step Functions definition opens and closes it."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import boto3
import pytest
from botocore.exceptions import ClientError

from difusion.adapters.ledger import Ledger
from difusion.adapters.queues import DeliveryQueue
from difusion.generator import SeriesSpec, generate_series
from difusion.local.pipeline import LocalPipeline, PipelineOptions
from difusion.models import DeliveryRequest, DeliveryScope
from difusion.window import PublicationWindow

pytestmark = pytest.mark.integration


@pytest.fixture
def windowed(_session_pipeline):
    """A pipeline whose window is set by each test (it provisions anew)."""
    pipeline, state = _session_pipeline
    state["used"] = True

    def provision(
        opening_in: float, open_for: float, grace: float = 2, election: str = "DIP_LOC_BCS"
    ) -> LocalPipeline:
        now = datetime.now().astimezone()
        opening = now + timedelta(seconds=opening_in)
        pipeline.options = PipelineOptions(
            election=election,
            time_scale=pipeline.options.time_scale,
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
    pipeline = windowed(opening_in=60, open_for=120)  # room for a busy machine (#11: a clock)
    # Before the opening: processing is allowed, publishing is not
    record = pipeline.process(packages[0])
    assert record["status"] == "accepted"
    assert "held_at" in record
    assert all(objects == {} for objects in _buckets(pipeline).values())
    assert pipeline.ledger.items("DELIVERY#") == []
    assert pipeline.ledger.window().state == "before_opening"
    # At the opening the timer opens the window and releases the newest snapshot
    _wait_for_window(pipeline, "open", timeout=90)
    _settle_until(pipeline, lambda: len(pipeline.ledger.items("DELIVERY#")) == 3)
    deliveries = pipeline.ledger.items("DELIVERY#")
    assert len(deliveries) == 3 and {d["status"] for d in deliveries} == {"delivered"}
    opening = pipeline.deployment.window.opening
    assert all(datetime.fromisoformat(d["started_at"]) >= opening for d in deliveries)
    for objects in _buckets(pipeline).values():
        assert objects  # published now


def test_a_delivery_that_reaches_replicate_early_is_held_not_published(windowed, packages):
    pipeline = windowed(opening_in=60, open_for=120)  # room for a busy machine
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
    pipeline = windowed(opening_in=0, open_for=8, grace=90)  # room for a busy machine (#11)
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

    # After the grace period, the monitor's next period writes the closing record, once
    report = pipeline.run_monitor_period()
    assert report["checks"] == [] and report["finalized"]
    assert report["finalized"]["final_snapshot_id"] == final["snapshot_id"]
    s3 = pipeline.s3
    origin = pipeline.deployment.origin_bucket
    record = json.loads(
        s3.get_object(Bucket=origin, Key=report["finalized"]["record_key"])["Body"].read()
    )
    assert record["final_snapshot"]["snapshot_id"] == final["snapshot_id"]
    assert record["final_snapshot"]["manifest_sha256"] == final["manifest_sha256"]
    assert [s["snapshot_id"] for s in record["snapshots_published"]] == [
        first["snapshot_id"],
        final["snapshot_id"],
    ]
    assert all(s["first_published_at"] for s in record["snapshots_published"])
    assert record["deliveries_outside_window"] == []
    assert {d["difusor_id"] for d in record["difusores"]} == set(published)
    assert {r["snapshot_id"] for r in record["rejections"]} == {
        after_close["snapshot_id"],
        too_late["snapshot_id"],
    }
    page = s3.get_object(Bucket=origin, Key=report["finalized"]["record_html_key"])["Body"]
    assert "Registro de cierre del PREP" in page.read().decode()
    assert pipeline.ledger.finalized()["final_snapshot_id"] == final["snapshot_id"]
    # The final package, manifest and signature are under compliance retention in the origin
    retained = {r["key"]: r for r in record["retained_in_origin"]}
    assert set(retained) >= {
        final["object_key"],
        final["manifest_key"],
        final["manifest_key"] + ".minisig",
    }
    for key, entry in retained.items():
        head = s3.head_object(Bucket=origin, Key=key, VersionId=entry["version_id"])
        assert head["ObjectLockMode"] == "COMPLIANCE"
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(
            Bucket=origin,
            Key=final["manifest_key"],
            VersionId=retained[final["manifest_key"]]["version_id"],
        )
    # Nothing after the close changes a difusor: a site that goes down is not suspended
    # (and gets no notice), and a full redelivery sent by hand is refused
    pipeline.sites["uabcs"].take_down()
    later = pipeline.run_monitor_period()
    assert later["checks"] == [] and later["actions"] == [] and later["finalized"] is None
    assert pipeline.difusor("uabcs").status == "active"
    stray = DeliveryRequest.for_head(
        pipeline.deployment.election,
        "diario-peninsular",
        pipeline.ledger.head(),
        reason="stray-after-close",
        scope=DeliveryScope.FULL,
    )
    DeliveryQueue(
        boto3.session.Session().client("sqs"), pipeline.deployment.delivery_queue_url
    ).send([stray])
    pipeline.settle()
    assert _buckets(pipeline) == before
    refused = pipeline.ledger.items(f"DELIVERY#{stray.snapshot_id}#diario-peninsular#stray")
    assert [d["status"] for d in refused] == ["refused"]


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
    # The closing record notes the early close and its reason
    _wait_until(record.closed_at + pipeline.deployment.window.grace)
    finalized = pipeline.run_monitor_period()["finalized"]
    closing = json.loads(
        pipeline.s3.get_object(
            Bucket=pipeline.deployment.origin_bucket, Key=finalized["record_key"]
        )["Body"].read()
    )
    assert closing["window"]["closed_early"] is True
    assert closing["window"]["close_reason"] == "100% de actas registradas"
    assert closing["final_snapshot"] is None and closing["snapshots_published"] == []


def test_a_drill_runs_in_its_own_partition_of_the_ledger(windowed, tmp_path):
    # Given a drill (simulacro) deployed like the official election, with its own id
    drill = "SIMULACRO_1_DIP_LOC_BCS"
    pipeline = windowed(opening_in=0, open_for=600, election=drill)
    # When a drill package goes through it
    snapshot = generate_series(SeriesSpec.small(cuts=1, election_code=drill))[0]
    record = pipeline.process(snapshot.write_package(tmp_path))
    # Then it is published, and nothing of it is in the official election's records
    assert record["status"] == "accepted", record.get("rejection_reason")
    assert {d["status"] for d in pipeline.ledger.items("DELIVERY#")} == {"delivered"}
    dynamodb = boto3.session.Session().resource("dynamodb")
    table = dynamodb.Table(pipeline.deployment.ledger_table)
    partitions = {item["pk"] for item in table.scan()["Items"]}
    assert partitions == {f"ELECTION#{drill}"}
    official = Ledger(dynamodb, pipeline.deployment.ledger_table, "DIP_LOC_BCS")
    assert official.head() is None and official.window().state == "before_opening"
    assert pipeline.ledger.window().state == "open"
