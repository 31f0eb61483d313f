"""Failure as a tested path: a lost answer, a step that gives up, a retried delivery, a
lease left by a worker that died, and a monitor check that overlaps a delivery."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)
from botocore.exceptions import ClientError, ReadTimeoutError

from difusion.adapters.idempotency import StepIdempotencyStore
from difusion.adapters.keystore import SecretsManagerKeyStore
from difusion.adapters.ledger import AlreadyPublished, DifusorBusy, Ledger
from difusion.adapters.queues import SignQueue
from difusion.adapters.sessions import new_session
from difusion.adapters.site_sources import BucketSource
from difusion.local.dispatcher import InvocationDied, LambdaContext
from difusion.local.kvs import store_writes
from difusion.local.provision import account_session
from difusion.manifest import Manifest
from difusion.models import DeliveryOutcome, DeliveryRequest
from difusion.publication import MANIFEST_PATH
from difusion.services.replicate import ReplicateService
from difusion.verification import verify_site
from difusion.versions import Pointer
from tests.integration.conftest import on_election_night_periods

pytestmark = pytest.mark.integration
NOW = datetime(2027, 6, 6, 3, 0, tzinfo=UTC)


def _invalidations(difusor) -> list[dict[str, Any]]:
    cloudfront = account_session(difusor.account_id).client("cloudfront")
    listing = cloudfront.list_invalidations(DistributionId=difusor.distribution_id)
    return listing["InvalidationList"].get("Items", [])


# --- a lost answer ---------------------------------------------------------------------------


def _losing_the_first_put_answer(client: Any) -> list[str]:
    """Let DynamoDB execute the first PutItem, then lose its answer (a read timeout):
    botocore retries it, as on AWS."""
    endpoint = client._endpoint
    send = endpoint._send
    lost: list[str] = []

    def _send(request: Any) -> Any:
        response = send(request)
        target = request.headers.get("X-Amz-Target", b"")
        if b"PutItem" in target and not lost:
            lost.append(target.decode())
            raise ReadTimeoutError(endpoint_url=request.url)
        return response

    endpoint._send = _send
    return lost


@pytest.mark.parametrize("store", [StepIdempotencyStore, DynamoDBPersistenceLayer])
def test_a_lost_answer_to_the_idempotency_record_does_not_block_the_step(pipeline, store):
    client = new_session().client("dynamodb")
    lost = _losing_the_first_put_answer(client)
    persistence = store(table_name=pipeline.deployment.idempotency_table, boto3_client=client)
    config = IdempotencyConfig(event_key_jmespath="id")
    config.register_lambda_context(LambdaContext("difusion-replicate", timeout_seconds=60))
    runs: list[str] = []

    @idempotent_function(data_keyword_argument="work", config=config, persistence_store=persistence)
    def step(work: dict[str, str]) -> dict[str, str]:
        runs.append(work["id"])
        return {"done": work["id"]}

    if store is DynamoDBPersistenceLayer:
        # Powertools alone: its own record, written once, blocks the step it belongs to
        with pytest.raises(IdempotencyAlreadyInProgressError):
            step(work={"id": "delivery-1"})
        assert lost and runs == []
        return
    assert step(work={"id": "delivery-1"}) == {"done": "delivery-1"}
    assert lost and runs == ["delivery-1"]
    # and the record it left answers a duplicate without running the step again
    assert step(work={"id": "delivery-1"}) == {"done": "delivery-1"}
    assert runs == ["delivery-1"]


# --- a step that gives up ----------------------------------------------------------------------


def test_an_ingest_that_gives_up_is_failed_in_the_ledger_and_dead_lettered(
    pipeline, packages, monkeypatch
):
    def broken_send(self, request) -> None:
        raise ConnectionError("sign queue unreachable")

    monkeypatch.setattr(SignQueue, "send", broken_send)
    pipeline.upload(packages[0])
    pipeline.settle()
    [snapshot] = pipeline.ledger.items("SNAPSHOT#")
    assert snapshot["status"] == "failed" and snapshot["failed_step"] == "ingest"
    assert snapshot["attempts"] == pipeline.deployment.max_attempts
    assert "sign queue unreachable" in snapshot["last_error"]
    assert len(pipeline.dead_letters("ingest")) == 1


def test_a_sign_that_gives_up_is_failed_in_the_ledger_and_dead_lettered(
    pipeline, packages, monkeypatch
):
    def no_key(self):
        raise ClientError({"Error": {"Code": "AccessDeniedException"}}, "GetSecretValue")

    monkeypatch.setattr(SecretsManagerKeyStore, "secret_key", no_key)
    pipeline.upload(packages[0])
    pipeline.settle()
    [snapshot] = pipeline.ledger.items("SNAPSHOT#")
    assert snapshot["status"] == "failed" and snapshot["failed_step"] == "sign"
    assert "AccessDeniedException" in snapshot["last_error"]
    assert pipeline.ledger.head() is None
    assert len(pipeline.dead_letters("sign")) == 1


def test_a_failure_recorded_late_never_rewrites_what_was_accepted_or_delivered(pipeline, packages):
    pipeline.process(packages[0])
    ledger = pipeline.ledger
    head = ledger.head()
    ledger.record_snapshot_failure(head.snapshot_id, "", "sign", 5, "late", True, NOW)
    assert ledger.snapshot(head.snapshot_id)["status"] == "accepted"
    difusor = pipeline.deployment.difusores[0]
    request = DeliveryRequest.for_head(ledger.election, difusor.difusor_id, head)
    ledger.record_delivery_failure(request, 2, "a duplicate failed", True, NOW)
    [delivery] = ledger.items(f"DELIVERY#{head.snapshot_id}#{difusor.difusor_id}")
    assert delivery["status"] == "delivered" and "last_error" not in delivery


# --- a retried delivery --------------------------------------------------------------------


def _switches(difusor) -> list[Pointer]:
    """Every pointer written that made a new version live, oldest first."""
    made: list[Pointer] = []
    for text in store_writes(difusor.kvs_arn):
        pointer = Pointer.from_text(text)
        if pointer.live is not None and (not made or pointer.live.version > made[-1].live.version):
            made.append(pointer)
    return made


def test_a_delivery_retried_after_its_switch_does_not_switch_again(pipeline, packages, monkeypatch):
    pipeline.process(packages[0])
    difusor = pipeline.deployment.difusores[0]
    finish = Ledger.finish_delivery
    lost: list[int] = []

    def finish_once_lost(self, request: DeliveryRequest, outcome: DeliveryOutcome, at):
        if request.difusor_id == difusor.difusor_id and not lost:
            lost.append(outcome.site_version or 0)
            raise ConnectionResetError("the ledger's answer was lost")
        return finish(self, request, outcome, at)

    monkeypatch.setattr(Ledger, "finish_delivery", finish_once_lost)
    # When the second cut's delivery fails after its switch and is tried again
    pipeline.process(packages[1])
    head = pipeline.ledger.head()
    [delivery] = pipeline.ledger.items(f"DELIVERY#{head.snapshot_id}#{difusor.difusor_id}")
    assert delivery["status"] == "delivered" and delivery["attempts"] == 2
    # Then the site switched once per snapshot: the retry found its switch made
    switches = _switches(difusor)
    assert [p.live.held.sequence for p in switches] == [1, 2]
    assert delivery["site_version"] == lost[0] == switches[-1].live.version
    # and no invalidation at all
    assert _invalidations(difusor) == []


def test_the_emulator_keeps_cloudfronts_caller_references(pipeline):
    difusor = pipeline.deployment.difusores[0]
    cloudfront = account_session(difusor.account_id).client("cloudfront")

    def invalidate(reference: str, path: str = "/*") -> str:
        return cloudfront.create_invalidation(
            DistributionId=difusor.distribution_id,
            InvalidationBatch={
                "Paths": {"Quantity": 1, "Items": [path]},
                "CallerReference": reference,
            },
        )["Invalidation"]["Id"]

    first = invalidate("delivery-a")
    assert invalidate("delivery-a") == first
    assert invalidate("delivery-b") != first
    with pytest.raises(ClientError, match="InvalidationBatchAlreadyExists"):
        invalidate("delivery-a", "/index.html")
    assert len(_invalidations(difusor)) == 2


# --- leases ------------------------------------------------------------------------------------


def test_a_lease_left_by_a_dead_worker_is_taken_over_by_its_retry_and_waited_for_by_others(
    pipeline, packages
):
    pipeline.process(packages[0])
    ledger = pipeline.ledger
    head = ledger.head()
    difusor = pipeline.deployment.difusores[0].difusor_id
    nxt = DeliveryRequest.for_head(ledger.election, difusor, head)
    second = DeliveryRequest(**{**nxt.__dict__, "sequence": head.sequence + 1, "snapshot_id": "B"})
    third = DeliveryRequest(**{**nxt.__dict__, "sequence": head.sequence + 2, "snapshot_id": "C"})
    # Given a worker that took the lease for the second cut and died
    ledger.claim(second, 900, NOW)
    # Then its retry takes the lease over at once
    ledger.claim(second, 900, NOW + timedelta(seconds=5))
    # while another delivery is told how long to wait, not refused for good
    with pytest.raises(DifusorBusy) as busy:
        ledger.claim(third, 900, NOW + timedelta(seconds=10))
    assert 890 <= busy.value.seconds <= 900
    assert "B#accepted" in str(busy.value)
    # and takes it once the lease expires
    ledger.claim(third, 900, NOW + timedelta(seconds=906))
    # A failure of the one that no longer holds it releases nothing
    ledger.record_delivery_failure(second, 2, "late", False, NOW + timedelta(seconds=907))
    assert ledger.delivery_lease(difusor).owner == "C#accepted"
    # and nothing goes back: the published sequence is the first cut's until one finishes
    with pytest.raises(AlreadyPublished):
        ledger.claim(nxt, 900, NOW + timedelta(seconds=2000))


def test_a_busy_difusors_delivery_is_recorded_and_delivered_once_the_lease_ends(pipeline, packages):
    pipeline.process(packages[0])
    ledger = pipeline.ledger
    difusor = pipeline.deployment.difusores[1].difusor_id
    # A dead delivery's lease lasts one hold (the heartbeat would renew it), scaled to about a
    # second here; the stuck one below is given ten, so it surely outlasts the next cut's
    # ingest and sign on a loaded machine and the delivery meets it at its first attempt.
    lease = max(int(os.environ["DELIVERY_LEASE_SECONDS"]), 10)
    stuck = DeliveryRequest(
        **{
            **DeliveryRequest.for_head(ledger.election, difusor, ledger.head()).__dict__,
            "snapshot_id": "STUCK",
            "sequence": 99,
            "reason": "accepted",
        }
    )
    # Given a lease held by a delivery whose worker died
    ledger.claim(stuck, lease, datetime.now(UTC))
    # When the next cut arrives
    pipeline.process(packages[1])
    # Then the difusor got it after the lease, and its waiting was recorded on the way
    head = ledger.head()
    [delivery] = ledger.items(f"DELIVERY#{head.snapshot_id}#{difusor}")
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] >= 2
    assert ledger.published(difusor).sequence == head.sequence


# --- a check that overlaps a delivery ------------------------------------------------------


def test_a_monitor_check_that_overlaps_a_delivery_is_not_an_integrity_incident(pipeline, packages):
    pipeline.process(packages[0])
    ledger = pipeline.ledger
    difusor = pipeline.difusor("uabcs")
    served = pipeline.site_objects(difusor.difusor_id)
    victim = next(
        f.path for f in Manifest.from_bytes(served[MANIFEST_PATH]).files if f.path.endswith(".json")
    )
    # Given a delivery of the next cut halfway: lease held, a new file already copied,
    # the manifest not yet replaced
    delivering = DeliveryRequest(
        **{
            **DeliveryRequest.for_head(ledger.election, difusor.difusor_id, ledger.head()).__dict__,
            "snapshot_id": "NEXT",
            "sequence": 2,
        }
    )
    ledger.claim(delivering, 3600, datetime.now(UTC))
    pipeline.tamper(difusor.difusor_id, victim, b'{"votos": 12}')
    # When the monitor checks the site
    report = pipeline.run_monitor_period()
    # Then the check is inconclusive: no incident, no alert, no repair, no failed period
    check = next(c for c in report["checks"] if c["difusor_id"] == difusor.difusor_id)
    assert check["outcome"] == "updating"
    assert [i for i in ledger.items("INCIDENT#") if i["difusor_id"] == difusor.difusor_id] == []
    assert not any(a.startswith(difusor.difusor_id) for a in report["actions"])
    assert ledger.monitor_state(difusor.difusor_id).consecutive_failures == 0
    # And once no delivery writes, the same difference is an integrity incident
    ledger.record_delivery_failure(delivering, 1, "abandoned", True, datetime.now(UTC))
    report = pipeline.run_monitor_period()
    check = next(c for c in report["checks"] if c["difusor_id"] == difusor.difusor_id)
    assert check["outcome"] == "altered" and check["altered_paths"] == [victim]


# --- a signature the ledger never accepted ---------------------------------------------------


def test_a_manifest_the_ledger_never_accepted_does_not_stay_in_the_origin(
    pipeline, packages, series, monkeypatch
):
    accept = Ledger.accept
    first = series[0].snapshot_id

    def lost_for_the_first(self, manifest, key, expected, at):
        if manifest.snapshot_id == first:
            raise ConnectionResetError("the ledger's answer was lost")
        return accept(self, manifest, key, expected, at)

    # Given a cut whose sign writes its manifest and signature, then never gets accepted
    monkeypatch.setattr(Ledger, "accept", lost_for_the_first)
    pipeline.process(packages[0])
    assert pipeline.ledger.snapshot(first)["status"] == "failed"
    # When the next cut is signed in its place
    record = pipeline.process(packages[1])
    assert record["status"] == "accepted" and record["sequence"] == 1
    # Then the origin holds only what the ledger accepted, and so does every difusor
    listed = pipeline.s3.list_objects_v2(
        Bucket=pipeline.deployment.origin_bucket, Prefix="manifests/"
    ).get("Contents", [])
    key = record["manifest_key"]
    assert sorted(o["Key"] for o in listed) == sorted([key, key + ".minisig"])
    for difusor in pipeline.deployment.difusores:
        assert not any(first in path for path in pipeline.site_objects(difusor.difusor_id))


# --- a monitor period that dies between its record and its actions ----------------------------


def test_a_period_that_dies_after_recording_acts_on_its_next_run(pipeline, packages, monkeypatch):
    from difusion.adapters.ledger.checks import CheckRecords
    from tests.integration.test_continuity import _service

    pipeline.process(packages[0])
    manifest = Manifest.from_bytes(pipeline.site_objects("uabcs")[MANIFEST_PATH])
    victim = next(f.path for f in manifest.files if f.path.endswith(".json"))
    pipeline.tamper("uabcs", victim, b"{}")
    now = datetime.now(UTC)
    service = _service(pipeline, lambda: now)
    # Given a run that records the period's check and dies before opening the incident
    open_incident = CheckRecords.open_incident
    monkeypatch.setattr(
        CheckRecords,
        "open_incident",
        lambda *a, **k: (_ for _ in ()).throw(ConnectionResetError("killed")),
    )
    with pytest.raises(ConnectionResetError):
        service.run_period()
    assert pipeline.ledger.items("INCIDENT#") == []
    # When the schedule retries the period
    monkeypatch.setattr(CheckRecords, "open_incident", open_incident)
    again = service.run_period()
    # Then the incident is open, the repair requested and the failure counted, each once
    assert "uabcs: open_incident" in again.actions and "uabcs: repair" in again.actions
    [incident] = pipeline.ledger.items("INCIDENT#")
    assert incident["incident_kind"] == "integrity" and incident["periods_failed"] == 1
    assert sum("redelivery" in a for a in incident["actions"]) == 1
    # and a third run owes nothing
    assert service.run_period().actions == []
    [incident] = pipeline.ledger.items("INCIDENT#")
    assert incident["periods_failed"] == 1


# --- a delivery whose worker died ----------------------------------------------------------


def _outcome(report: dict[str, Any], difusor_id: str) -> str:
    return next(c["outcome"] for c in report["checks"] if c["difusor_id"] == difusor_id)


@pytest.fixture
def night_of_periods(_session_pipeline):
    """Election night's periods (15 min), a 15-minute lease and catch-up, on a clock the
    test moves: the monitor and the functions read it alike. A dead step's hold is made
    long (15 min of the wall clock, which SQS's visibility runs on): its own retry would
    otherwise heal the difusor within one hold (tests/integration/test_crash_healing.py),
    and this is the monitor's catch-up, for a delivery whose retry does not come."""
    yield from on_election_night_periods(
        _session_pipeline,
        {
            "DELIVERY_LEASE_SECONDS": "900",
            "CATCH_UP_AFTER_SECONDS": "900",
            "STEP_HOLD_SECONDS": "900",
            "STEP_HEARTBEAT_SECONDS": "300",
        },
    )


def test_a_difusor_whose_delivery_died_with_its_worker_gets_the_cut_by_the_monitor(
    night_of_periods, packages, monkeypatch
):
    pipeline = night_of_periods
    ledger = pipeline.ledger
    pipeline.process(packages[0])
    victim = "canal-10-los-cabos"
    served = Manifest.from_bytes(pipeline.site_objects(victim)[MANIFEST_PATH])
    listed = {f.path for f in served.files}
    copy_step = ReplicateService._copy_step
    copied: list[str] = []  # files the served manifest lists, overwritten with the new cut's
    lock = threading.Lock()

    def dies_midway_for_the_victim(self, site, prefix, step):
        if site.difusor.difusor_id == victim:
            with lock:  # copies run in parallel: die once two listed files are replaced
                if len(copied) >= 2:
                    raise InvocationDied("killed mid-delivery")
                if step.path in listed:
                    copied.append(step.path)
        copy_step(self, site, prefix, step)

    # Given the victim's worker killed mid-delivery of the next cut: its lease taken, two
    # of the cut's files copied into the standby slot, the site still the last cut's
    monkeypatch.setattr(ReplicateService, "_copy_step", dies_midway_for_the_victim)
    pipeline.process(packages[1])
    monkeypatch.undo()
    head = ledger.head()
    assert ledger.published(victim).sequence == head.sequence - 1
    assert ledger.delivery_lease(victim).owner == f"{head.snapshot_id}#accepted"
    [dead] = pipeline.dispatcher.abandoned.values()  # invisible: six function timeouts
    [record] = ledger.items(f"DELIVERY#{head.snapshot_id}#{victim}")
    assert record["status"] == "in_progress" and len(copied) == 2
    # The half-written slot is not routed: the site serves the last cut whole
    assert pipeline.site_objects(victim)[MANIFEST_PATH] == served.canonical_bytes()
    # When periods run while the lease may still cover a live worker (the period of the
    # cut, and the next one, when the lease ends): nothing is sent again, and the site is
    # ok (it serves, whole, what the ledger says it publishes)
    lease_until = ledger.delivery_lease(victim).until
    for _ in range(2):
        report = pipeline.run_monitor_period()
        assert pipeline.clock.now().timestamp() <= lease_until
        assert not any(a.startswith(victim) for a in report["actions"])
        assert _outcome(report, victim) == "ok"
    # and at the period after it, the lease over (a dead worker's, still on the difusor):
    # the head is sent again
    report = pipeline.run_monitor_period()
    assert _outcome(report, victim) == "ok"
    assert [i for i in ledger.items("INCIDENT#") if i["difusor_id"] == victim] == []
    [action] = [a for a in report["actions"] if a.startswith(victim)]
    assert action.startswith(f"{victim}: catch_up #{head.sequence}")
    assert not any(a.startswith("uabcs") for a in report["actions"])  # up to date
    pipeline.settle()
    # Then the victim publishes the cut, and the ledger says what happened
    assert ledger.published(victim).sequence == head.sequence
    [record] = ledger.items(f"DELIVERY#{head.snapshot_id}#{victim}")
    assert record["status"] == "delivered" and record["reason"] == "accepted"
    assert record["catch_up_periods"] == [report["period"]]
    assert "was sent 30 min ago" in record["last_catch_up_why"]
    # And when the dead worker's message returns, nothing is delivered or switched again
    switches = len(_switches(pipeline.difusor(victim)))
    assert pipeline.dispatcher.expire_abandoned() == 1
    pipeline.settle()
    assert pipeline.dispatcher.abandoned == {} and dead
    assert ledger.published(victim).sequence == head.sequence
    [record] = ledger.items(f"DELIVERY#{head.snapshot_id}#{victim}")
    assert record["status"] == "delivered"
    assert len(_switches(pipeline.difusor(victim))) == switches == 2
    assert verify_site(
        BucketSource(
            pipeline.difusor_s3(victim),
            pipeline.difusor(victim).bucket,
            pipeline.served_prefix(victim),
        ),
        pipeline.secret_key.public_key,
    ).ok
