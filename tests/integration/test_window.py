"""The window on the emulator, on a controlled clock: the deployed timer definition opens
and closes it when the clock reaches the opening and the close, to the second, however
busy the machine is. Nothing here waits on the wall clock."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from botocore.endpoint import Endpoint
from botocore.exceptions import ClientError

from difusion.adapters.ledger import Ledger
from difusion.adapters.queues import DeliveryQueue
from difusion.adapters.sessions import new_session
from difusion.generator import SeriesSpec, generate_series
from difusion.local.clock import ControlledClock
from difusion.local.clocked_timer import ClockedExecution
from difusion.local.pipeline import LocalPipeline
from difusion.local.provision import DEMO_DIFUSORES
from difusion.models import DeliveryRequest, DeliveryScope
from difusion.publication import MANIFEST_PATH
from difusion.verification import verify_directory
from difusion.window import PublicationWindow
from difusion.window_timer import DEFINITION_PATH, execution_input, render_definition
from tests.integration.conftest import OPTIONS, back_to_defaults, provision_on

pytestmark = pytest.mark.integration

GRACE = timedelta(minutes=15)  # election night's


@pytest.fixture
def windowed(_session_pipeline):
    """A pipeline on a controlled clock, with the window each test sets (it provisions
    anew). The clock starts at the wall clock's minute: package names carry minutes."""
    pipeline, state = _session_pipeline
    state["used"] = True

    def provision(
        opening_in: timedelta,
        open_for: timedelta,
        grace: timedelta = GRACE,
        election: str = "DIP_LOC_BCS",
        difusores=DEMO_DIFUSORES,
    ) -> LocalPipeline:
        clock = ControlledClock(datetime.now().astimezone().replace(second=0, microsecond=0))
        opening = clock.now() + opening_in
        window = PublicationWindow(opening, opening + open_for, grace)
        options = replace(OPTIONS, election=election, difusores=difusores, window=window)
        return provision_on(pipeline, options, clock)

    yield provision
    back_to_defaults(pipeline)


def _package(pipeline: LocalPipeline, directory: Path, cut: datetime) -> Path:
    """A small package cut at ``cut`` (to the minute; names carry local time)."""
    tz = ZoneInfo(pipeline.deployment.time_zone)
    snapshot = generate_series(SeriesSpec.small(cuts=1))[0]
    snapshot.cut_time = cut.astimezone(tz).replace(second=0, microsecond=0)
    return snapshot.write_package(directory / cut.strftime("%H%M%S"))


def _buckets(pipeline):
    return {
        d.difusor_id: pipeline.site_objects(d.difusor_id) for d in pipeline.deployment.difusores
    }


def _redeliver_by_hand(pipeline, difusor_id: str) -> list[str]:
    """A full redelivery of the head to ``difusor_id``, sent straight to the delivery queue
    as an operator could; returns its delivery's statuses once the pipeline settles."""
    stray = DeliveryRequest.for_head(
        pipeline.deployment.election,
        difusor_id,
        pipeline.ledger.head(),
        reason="stray-by-hand",
        scope=DeliveryScope.FULL,
    )
    DeliveryQueue(new_session().client("sqs"), pipeline.deployment.delivery_queue_url).send([stray])
    pipeline.settle()
    deliveries = pipeline.ledger.items(f"DELIVERY#{stray.snapshot_id}#{difusor_id}#stray")
    return [d["status"] for d in deliveries]


def _closing_record(pipeline, report) -> dict:
    body = pipeline.s3.get_object(
        Bucket=pipeline.deployment.origin_bucket, Key=report["finalized"]["record_key"]
    )["Body"]
    return json.loads(body.read())


def test_a_snapshot_before_the_opening_is_signed_but_held_then_released_at_the_opening(
    windowed, packages
):
    pipeline = windowed(opening_in=timedelta(hours=1), open_for=timedelta(hours=24))
    clock, opening = pipeline.clock, pipeline.deployment.window.opening
    # Before the opening: processing is allowed, publishing is not
    record = pipeline.process(packages[0])
    assert record["status"] == "accepted"
    assert "held_at" in record
    assert all(objects == {} for objects in _buckets(pipeline).values())
    assert pipeline.ledger.items("DELIVERY#") == []
    # A second before the opening the timer has not fired
    clock.advance_to(opening - timedelta(seconds=1))
    pipeline.settle()
    assert pipeline.ledger.window().state == "before_opening"
    assert pipeline.ledger.items("DELIVERY#") == []
    # At the opening, to the second, the timer opens the window and releases the newest
    # snapshot to every difusor
    clock.advance_to(opening)
    window = pipeline.ledger.window()
    assert window.state == "open" and window.opened_at == opening
    pipeline.settle()
    deliveries = pipeline.ledger.items("DELIVERY#")
    assert len(deliveries) == 3 and {d["status"] for d in deliveries} == {"delivered"}
    assert {d["reason"].split(":")[0] for d in deliveries} == {"release"}
    assert all(datetime.fromisoformat(d["started_at"]) == opening for d in deliveries)
    for objects in _buckets(pipeline).values():
        assert objects  # published now
    assert [name for name, _ in pipeline.timer.history] == [
        "WaitForOpening",
        "Open",
        "Release",
        "WaitForClosing",
    ]


def test_a_delivery_that_reaches_replicate_early_is_held_not_published(windowed, packages):
    pipeline = windowed(opening_in=timedelta(hours=1), open_for=timedelta(hours=24))
    pipeline.process(packages[0])
    head = pipeline.ledger.head()
    difusor = pipeline.deployment.difusores[0]
    # Whatever sends it (a bug, a replayed message), replicate checks the window itself
    request = DeliveryRequest.for_head(
        pipeline.deployment.election, difusor.difusor_id, head, reason="stray"
    )
    new_session().client("sqs").send_message(
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
    pipeline = windowed(opening_in=timedelta(0), open_for=timedelta(hours=2))
    clock, window = pipeline.clock, pipeline.deployment.window
    first = pipeline.process(_package(pipeline, tmp_path, window.opening - timedelta(minutes=2)))
    assert first["status"] == "accepted", (
        first.get("rejection_code"),
        first.get("rejection_reason"),
    )
    # The timer closes the window at the close, not a second before
    clock.advance_to(window.closing - timedelta(seconds=1))
    assert pipeline.ledger.window().state == "open"
    clock.advance_to(window.closing)
    closed = pipeline.ledger.window()
    assert closed.state == "closed" and closed.closed_at == window.closing
    assert pipeline.timer.status == "SUCCEEDED"
    # A final cut taken before the close, arriving at the last second of the grace: published
    clock.advance_to(window.closing + window.grace)
    final = pipeline.process(_package(pipeline, tmp_path, window.closing - timedelta(minutes=1)))
    assert final["status"] == "accepted", (
        final.get("rejection_code"),
        final.get("rejection_reason"),
    )
    published = {
        d["difusor_id"]: d for d in pipeline.ledger.items(f"DELIVERY#{final['snapshot_id']}#")
    }
    assert {d["status"] for d in published.values()} == {"delivered"}
    assert set(published) == {d.difusor_id for d in pipeline.deployment.difusores}
    # A cut taken after the close is refused, whenever it arrives
    after_close = pipeline.process(
        _package(pipeline, tmp_path, window.closing + timedelta(minutes=1))
    )
    assert after_close["status"] == "rejected"
    assert after_close["rejection_code"] == "window_closed"
    # A second after the grace nothing more is published, not even a cut taken at the close
    clock.advance(timedelta(seconds=1))
    before = _buckets(pipeline)
    too_late = pipeline.process(_package(pipeline, tmp_path, window.closing))
    assert too_late["rejection_code"] == "window_closed"
    assert "grace" in too_late["rejection_reason"]
    assert _buckets(pipeline) == before

    # After the grace period, the monitor's next period writes the closing record, once
    report = pipeline.run_monitor_period()
    assert report["checks"] == [] and report["finalized"]
    assert report["finalized"]["final_snapshot_id"] == final["snapshot_id"]
    s3 = pipeline.s3
    origin = pipeline.deployment.origin_bucket
    record = _closing_record(pipeline, report)
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
    assert _redeliver_by_hand(pipeline, "diario-peninsular") == ["refused"]
    assert _buckets(pipeline) == before


@contextlib.contextmanager
def _clock_moves_on_first_write(
    clock: ControlledClock, bucket: str, to: datetime
) -> Iterator[list[str]]:
    """Move ``clock`` to ``to`` as the first object is written into ``bucket`` (the
    delivery is under way: it passed the gate and started), before that write is sent.
    Yields the writes that saw the clock move."""
    moved: list[str] = []
    lock = threading.Lock()
    make_request = Endpoint.make_request

    def writing(endpoint, operation_model, request_dict):
        if operation_model.name in ("CopyObject", "PutObject") and bucket in request_dict["url"]:
            with lock:
                if not moved:
                    moved.append(operation_model.name)
                    clock.advance_to(to)
        return make_request(endpoint, operation_model, request_dict)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Endpoint, "make_request", writing)
        yield moved


def test_a_delivery_that_starts_within_the_grace_and_ends_after_it_is_inside_the_window(
    windowed, tmp_path
):
    # Given one difusor, a window closed by its timer, and a minute of grace left
    pipeline = windowed(
        opening_in=timedelta(0), open_for=timedelta(hours=1), difusores=DEMO_DIFUSORES[:1]
    )
    clock, window = pipeline.clock, pipeline.deployment.window
    [difusor] = pipeline.deployment.difusores
    first = pipeline.process(_package(pipeline, tmp_path, window.opening - timedelta(minutes=2)))
    assert first["status"] == "accepted"
    end_of_grace = window.closing + window.grace
    clock.advance_to(end_of_grace - timedelta(minutes=1))
    assert pipeline.ledger.window().state == "closed"
    # When the final cut arrives and its delivery is still writing when the grace ends
    after_grace = end_of_grace + timedelta(minutes=5)
    with _clock_moves_on_first_write(clock, difusor.bucket, after_grace) as moved:
        final = pipeline.process(
            _package(pipeline, tmp_path, window.closing - timedelta(minutes=1))
        )
    assert moved, "the delivery never wrote to the difusor's bucket"
    assert clock.now() == after_grace
    # Then replicate's gate let it start within the grace and it ran to its end: published
    [delivery] = pipeline.ledger.items(f"DELIVERY#{final['snapshot_id']}#")
    assert delivery["status"] == "delivered", delivery
    started = datetime.fromisoformat(delivery["attempt_started_at"])
    finished = datetime.fromisoformat(delivery["finished_at"])
    assert started == end_of_grace - timedelta(minutes=1) and finished == after_grace
    # And the site serves the final snapshot whole, not half of it
    site = tmp_path / "site"
    pipeline.download_site(difusor.difusor_id, site)
    verdict = verify_directory(site, pipeline.secret_key.public_key)
    assert verdict.ok, verdict.problems
    assert verdict.snapshot_id == final["snapshot_id"]
    # And a delivery that starts after the grace is refused by the same gate
    assert _redeliver_by_hand(pipeline, difusor.difusor_id) == ["refused"]
    assert (
        pipeline.site_objects(difusor.difusor_id)[MANIFEST_PATH]
        == (site / MANIFEST_PATH).read_bytes()
    )
    # And the closing record agrees with the gate: inside the window, finished after the grace
    record = _closing_record(pipeline, pipeline.run_monitor_period())
    assert record["deliveries_outside_window"] == []
    [entry] = [
        d
        for d in record["difusores"][0]["deliveries"]
        if d["snapshot_id"] == final["snapshot_id"] and d["status"] == "delivered"
    ]
    assert entry["finished_at"] == delivery["finished_at"]
    assert record["final_snapshot"]["snapshot_id"] == final["snapshot_id"]


def test_an_operator_closes_early_and_later_cuts_are_refused(windowed, tmp_path, capsys):
    from difusion.cli import main

    pipeline = windowed(opening_in=timedelta(0), open_for=timedelta(hours=10))
    clock, window = pipeline.clock, pipeline.deployment.window
    clock.advance(timedelta(hours=3))
    args = ["--table", pipeline.deployment.ledger_table, "--election", pipeline.deployment.election]
    assert main(["window", "close", *args, "--reason", "100% de actas registradas"]) == 0
    record = pipeline.ledger.window()
    assert record.state == "closed" and record.closed_early
    assert record.closed_at == clock.now()  # the operator's command reads the pipeline's clock
    assert main(["window", "status", *args]) == 0
    assert "closed" in capsys.readouterr().out
    # Closing again is refused with a clear message
    assert main(["window", "close", *args, "--reason", "otra vez"]) == 2
    assert "not open" in capsys.readouterr().err
    # A cut after the early close is refused
    late = pipeline.process(_package(pipeline, tmp_path, record.closed_at + timedelta(minutes=1)))
    assert late["rejection_code"] == "window_closed"
    assert all(objects == {} for objects in _buckets(pipeline).values())
    # Within the grace the monitor does not write the record yet; after it, it does
    clock.advance_to(record.closed_at + window.grace - timedelta(seconds=1))
    assert pipeline.run_monitor_period()["finalized"] is None
    clock.advance_to(record.closed_at + window.grace)
    finalized = pipeline.run_monitor_period()
    closing = _closing_record(pipeline, finalized)
    assert closing["window"]["closed_early"] is True
    assert closing["window"]["close_reason"] == "100% de actas registradas"
    assert closing["final_snapshot"] is None and closing["snapshots_published"] == []
    # At the configured close the timer finds the window closed already and leaves it be
    clock.advance_to(window.closing)
    assert pipeline.timer.status == "SUCCEEDED"
    assert pipeline.timer.history[-1][0] == "AlreadyClosed"
    assert pipeline.ledger.window().closed_at == record.closed_at


def test_a_drill_runs_in_its_own_partition_of_the_ledger(windowed, tmp_path):
    # Given a drill (simulacro) deployed like the official election, with its own id
    drill = "SIMULACRO_1_DIP_LOC_BCS"
    pipeline = windowed(opening_in=timedelta(0), open_for=timedelta(hours=10), election=drill)
    # When a drill package goes through it
    snapshot = generate_series(SeriesSpec.small(cuts=1, election_code=drill))[0]
    record = pipeline.process(snapshot.write_package(tmp_path))
    # Then it is published, and nothing of it is in the official election's records
    assert record["status"] == "accepted", record.get("rejection_reason")
    assert {d["status"] for d in pipeline.ledger.items("DELIVERY#")} == {"delivered"}
    dynamodb = new_session().resource("dynamodb")
    table = dynamodb.Table(pipeline.deployment.ledger_table)
    partitions = {item["pk"] for item in table.scan()["Items"]}
    assert partitions == {f"ELECTION#{drill}"}
    official = Ledger(dynamodb, pipeline.deployment.ledger_table, "DIP_LOC_BCS")
    assert official.head() is None and official.window().state == "before_opening"
    assert pipeline.ledger.window().state == "open"


# --- the timer on a controlled clock is the timer the emulator runs ---------------------


def _run_on_the_emulator(pipeline, definition: str, name: str, opening, closing) -> list[str]:
    """The definition executed by the emulator's Step Functions (its waits on the wall
    clock: instants already past, so it runs through). Returns the states it entered."""
    stepfunctions = new_session().client("stepfunctions")
    role = stepfunctions.describe_state_machine(stateMachineArn=pipeline.deployment.timer_arn)
    machine = stepfunctions.create_state_machine(
        name=f"timer-{name}", definition=definition, roleArn=role["roleArn"]
    )["stateMachineArn"]
    execution = stepfunctions.start_execution(
        stateMachineArn=machine, name=name, input=execution_input(opening, closing)
    )["executionArn"]
    deadline = time.monotonic() + 120  # a bound for a stuck emulator, not a margin
    while stepfunctions.describe_execution(executionArn=execution)["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the emulator's execution never ended"
        time.sleep(0.1)
    assert stepfunctions.describe_execution(executionArn=execution)["status"] == "SUCCEEDED"
    events = stepfunctions.get_execution_history(executionArn=execution)["events"]
    return [
        e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
    ]


def _run_on_the_clock(pipeline, definition: str, name: str, opening, closing) -> list[str]:
    session = new_session()
    execution = ClockedExecution(
        json.loads(definition),
        name,
        json.loads(execution_input(opening, closing)),
        pipeline.clock,
        {"DynamoDB": session.client("dynamodb"), "SQS": session.client("sqs")},
    ).start()
    assert execution.status == "SUCCEEDED", execution.error
    return [state for state, _ in execution.history]


@pytest.mark.parametrize("closed_before_the_opening", [False, True])
def test_the_timer_on_a_controlled_clock_does_what_the_emulator_does(
    windowed, closed_before_the_opening
):
    # Given the deployed definition for two elections of their own in the same ledger and
    # sign queue, one executed by the emulator and one on the controlled clock, both with
    # the opening and the close already past on their clock
    pipeline = windowed(opening_in=timedelta(0), open_for=timedelta(hours=1))
    deployment = pipeline.deployment
    ledger_table = new_session().resource("dynamodb").Table(deployment.ledger_table)
    past = datetime.now().astimezone() - timedelta(hours=2)
    runs = {}
    for election, run, opening in (
        ("BY_THE_EMULATOR", _run_on_the_emulator, past),
        ("ON_THE_CLOCK", _run_on_the_clock, pipeline.clock.now() - timedelta(hours=2)),
    ):
        if closed_before_the_opening:  # an operator's close got there first
            ledger_table.put_item(
                Item={"pk": f"ELECTION#{election}", "sk": "WINDOW", "state": "closed"}
            )
        definition = render_definition(
            DEFINITION_PATH.read_text(),
            ledger_table=deployment.ledger_table,
            sign_queue_url=deployment.sign_queue_url,
            election=election,
        )
        name = f"window-{election}"
        states = run(pipeline, definition, name, opening, opening + timedelta(hours=1))
        item = ledger_table.get_item(Key={"pk": f"ELECTION#{election}", "sk": "WINDOW"})["Item"]
        runs[election] = (states, item, name)
    # Then both went through the same states and left the same window record
    (by_emulator, emulator_item, emulator_name), (on_clock, clock_item, clock_name) = runs.values()
    assert on_clock == by_emulator
    assert set(clock_item) == set(emulator_item)
    assert clock_item["state"] == emulator_item["state"] == "closed"
    if not closed_before_the_opening:
        assert on_clock[-1] == "Closed"
        assert (clock_item["timer_execution"], emulator_item["timer_execution"]) == (
            clock_name,
            emulator_name,
        )
        for item in (clock_item, emulator_item):
            opened = datetime.fromisoformat(item["opened_at"].replace("Z", "+00:00"))
            closed = datetime.fromisoformat(item["closed_at"].replace("Z", "+00:00"))
            assert opened <= closed
    else:
        assert on_clock[-1] == "AlreadyClosed"
    # And sent the same release to the sign queue (or none)
    sqs = new_session().client("sqs")
    bodies = []
    while messages := sqs.receive_message(
        QueueUrl=deployment.sign_queue_url, MaxNumberOfMessages=10
    ).get("Messages", []):
        bodies += [json.loads(m["Body"]) for m in messages]
        for m in messages:
            sqs.delete_message(QueueUrl=deployment.sign_queue_url, ReceiptHandle=m["ReceiptHandle"])
    releases = {b["election"]: b for b in bodies if b["election"] in runs}
    if closed_before_the_opening:
        assert releases == {}
    else:
        assert releases == {
            election: {"action": "release", "election": election, "release_id": name}
            for election, (_, _, name) in runs.items()
        }
