"""ReplicateService.deliver, decision by decision, on in-memory fakes (tests/fakes.py):
what it publishes, what it records, what it raises for the queue to retry."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from difusion.adapters.ledger import DifusorBusy, lease_owner
from difusion.adapters.origin import PUBLIC_KEY_KEY, manifest_key, signature_key
from difusion.manifest import Manifest, ManifestFile, PackageInfo
from difusion.models import (
    DeliveryLease,
    DeliveryRequest,
    DeliveryStatus,
    Difusor,
    DifusorStatus,
    Head,
    PublishedState,
)
from difusion.services.replicate import ReplicateService
from difusion.signing import SecretKey, sign
from difusion.window import PublicationWindow, WindowRecord, WindowState
from tests.fakes import (
    FakeDeliveryLedger,
    FakeOrigin,
    FakeRegistry,
    FakeSites,
)
from tests.ledger_contract import exercise_delivery_ledger

NOW = datetime(2027, 6, 7, 4, 0, tzinfo=UTC)
WINDOW = PublicationWindow(NOW - timedelta(hours=1), NOW + timedelta(hours=23))
OPEN = WindowRecord(WindowState.OPEN, opened_at=WINDOW.opening)
KEY = SecretKey.generate()
DIFUSOR = Difusor("d1", "Diario", "111111111111", "b", "E1", "r", "x" * 32, "https://d1")


def _world(sequence: int = 1):
    files = [ManifestFile(f"f{i}.json", f"{i:064x}", 10, "application/json") for i in range(3)]
    draft = Manifest.draft(
        election="E",
        snapshot_id=f"S{sequence}",
        cut_time=NOW - timedelta(minutes=5),
        package=PackageInfo("p.zip", "0" * 64, 1),
        files=files,
    )
    manifest = draft.chained(
        sequence=sequence,
        previous_manifest_sha256=None if sequence == 1 else "a" * 64,
        created_at=NOW,
    )
    body = manifest.canonical_bytes()
    key = manifest_key(sequence, manifest.snapshot_id)
    origin = FakeOrigin(
        {
            key: body,
            signature_key(key): sign(
                body, KEY, trusted_comment="t", untrusted_comment="u"
            ).encode(),
            PUBLIC_KEY_KEY: KEY.public_key.to_file().encode(),
        }
    )
    ledger = FakeDeliveryLedger(window_record=OPEN, manifests={sequence: key})
    head = Head(sequence, manifest.snapshot_id, manifest.cut_time, key, manifest.sha256, "0" * 64)
    return origin, ledger, DeliveryRequest.for_head("E", "d1", head)


def _service(origin, ledger, sites, difusor=DIFUSOR, now=NOW):
    return ReplicateService(
        origin,
        ledger,
        FakeRegistry({"d1": difusor}),
        sites,
        window=WINDOW,
        copy_concurrency=2,
        lease_seconds=900,
        clock=lambda: now,
        sleep=lambda _: None,
    )


def test_an_active_difusor_in_the_open_window_gets_the_snapshot_and_one_invalidation():
    origin, ledger, request = _world()
    sites = FakeSites()
    outcome = _service(origin, ledger, sites).deliver(request, attempt=1)
    assert outcome.status is DeliveryStatus.DELIVERED and outcome.objects_copied >= 3
    site = sites.sites["d1"]
    assert {"f0.json", "f1.json", "f2.json"} <= set(site.objects)
    assert len(site.invalidations) == 1
    assert ledger.published("d1").sequence == 1 and ledger.delivery_lease("d1") is None
    assert ledger.record(request)["status"] == "delivered"


@pytest.mark.parametrize(
    ("difusor", "record", "now", "status"),
    [
        (replace(DIFUSOR, status=DifusorStatus.SUSPENDED), OPEN, NOW, DeliveryStatus.SKIPPED),
        (DIFUSOR, WindowRecord(), WINDOW.opening - timedelta(minutes=1), DeliveryStatus.HELD),
        (
            DIFUSOR,
            WindowRecord(WindowState.CLOSED, closed_at=NOW - timedelta(hours=1)),
            NOW,
            DeliveryStatus.REFUSED,
        ),
    ],
    ids=["suspended", "before-opening", "after-close-and-grace"],
)
def test_nothing_is_written_where_it_must_not_be_and_the_ledger_says_why(
    difusor, record, now, status
):
    origin, ledger, request = _world()
    ledger.window_record = record
    sites = FakeSites()
    outcome = _service(origin, ledger, sites, difusor=difusor, now=now).deliver(request, 1)
    assert outcome.status is status
    assert sites.sites.get("d1") is None or sites.sites["d1"].objects == {}
    assert ledger.record(request)["status"] == str(status)
    assert ledger.delivery_lease("d1") is None


@pytest.mark.parametrize(
    ("published", "status", "recorded"),
    [
        (1, DeliveryStatus.DELIVERED, None),  # a duplicate: nothing to do, nothing to record
        (2, DeliveryStatus.SUPERSEDED, "superseded"),  # never back
    ],
    ids=["same-sequence", "newer-published"],
)
def test_a_difusor_that_already_publishes_it_or_newer_gets_nothing(published, status, recorded):
    origin, ledger, request = _world()
    ledger.states["d1"] = PublishedState(published, f"S{published}", "k", "0" * 64)
    sites = FakeSites()
    outcome = _service(origin, ledger, sites).deliver(request, 1)
    assert outcome.status is status
    assert "d1" not in sites.sites
    assert ledger.record(request).get("status") == recorded


@pytest.mark.parametrize(
    ("owner", "until", "delivered"),
    [
        ("S9#accepted", NOW + timedelta(minutes=10), False),  # another delivery, alive
        ("S9#accepted", NOW - timedelta(seconds=1), True),  # another one's, expired
        ("S1#accepted", NOW + timedelta(minutes=10), True),  # its own: a retry takes it over
    ],
    ids=["held-by-another", "expired", "own-retry"],
)
def test_a_lease_is_taken_over_by_a_retry_and_waited_for_by_others(owner, until, delivered):
    origin, ledger, request = _world()
    assert lease_owner(request) == "S1#accepted"
    ledger.leases["d1"] = DeliveryLease(owner, 9, int(until.timestamp()))
    sites = FakeSites()
    service = _service(origin, ledger, sites)
    if not delivered:
        with pytest.raises(DifusorBusy) as busy:
            service.deliver(request, 1)
        assert busy.value.seconds == pytest.approx(601, abs=1)  # returns when it ends
        assert "d1" not in sites.sites
        return
    assert service.deliver(request, 1).status is DeliveryStatus.DELIVERED


def test_a_failed_attempt_is_recorded_releases_its_lease_and_the_retry_invalidates_once():
    origin, ledger, request = _world()
    sites = FakeSites()
    service = _service(origin, ledger, sites)
    finish = ledger.finish_delivery
    lost = []

    def finish_once_lost(request, outcome, at):
        if not lost:
            lost.append(outcome.invalidation_id)
            raise ConnectionResetError("answer lost")
        finish(request, outcome, at)

    ledger.finish_delivery = finish_once_lost  # type: ignore[method-assign]
    with pytest.raises(ConnectionResetError):
        service.deliver(request, 1)
    # the step's wrapper records the failure: retrying, lease released
    service.record_failure(request, 1, final=False, error="ConnectionResetError: answer lost")
    assert ledger.record(request)["status"] == "retrying"
    assert ledger.delivery_lease("d1") is None
    # the retry publishes and gets the invalidation already made
    assert service.deliver(request, 2).invalidation_id == lost[0]
    assert len(sites.sites["d1"].invalidations) == 1


def test_a_duplicate_run_of_a_delivery_that_finished_meanwhile_leaves_it_delivered():
    origin, ledger, request = _world()
    sites = FakeSites()
    service = _service(origin, ledger, sites)
    claim = ledger.claim
    first: list[str] = []

    def the_first_run_finishes_meanwhile(request, lease_seconds, now):
        # the duplicate (a message handed out again) takes the lease the first run owns,
        # and the first run finishes before the duplicate records its start
        claim(request, lease_seconds, now)
        ledger.claim = claim  # type: ignore[method-assign]
        first.append(service.deliver(request, 1).status)

    ledger.claim = the_first_run_finishes_meanwhile  # type: ignore[method-assign]
    outcome = service.deliver(request, 2)
    assert first == ["delivered"]
    assert (outcome.status, outcome.detail) == ("delivered", "already delivered")
    assert ledger.record(request)["status"] == "delivered"  # not in_progress again
    assert len(sites.sites["d1"].invalidations) == 1


def test_a_site_that_fails_leaves_the_difusor_where_it_was():
    origin, ledger, request = _world()
    sites = FakeSites()
    sites.open(DIFUSOR).fail_on = "copy"
    service = _service(origin, ledger, sites)
    with pytest.raises(ConnectionError):
        service.deliver(request, 1)
    service.record_failure(request, 5, final=True, error="ConnectionError: copy failed")
    assert ledger.published("d1") is None
    assert ledger.record(request)["status"] == "failed"


def test_the_fake_ledger_keeps_the_real_ledgers_contract():
    ledger = FakeDeliveryLedger()

    def status_of(request):
        return ledger.record(request)["status"]

    exercise_delivery_ledger(ledger, status_of)


@pytest.mark.parametrize(
    ("difusor", "record", "now", "status"),
    [
        (replace(DIFUSOR, status=DifusorStatus.SUSPENDED), OPEN, NOW, DeliveryStatus.SKIPPED),
        (DIFUSOR, WindowRecord(), WINDOW.opening - timedelta(minutes=1), DeliveryStatus.HELD),
    ],
    ids=["suspended", "before-opening"],
)
def test_the_sharded_path_has_the_gate_deliver_has(difusor, record, now, status):
    origin, ledger, request = _world()
    ledger.window_record = record
    sites = FakeSites()
    service = _service(origin, ledger, sites, difusor=difusor, now=now)
    plan = service.plan(request)
    copied = [service.copy_shard(request, tier, 0, 1) for tier in plan.content_tiers]
    assert copied == [0] * len(plan.content_tiers)
    assert service.commit(request).status is status
    assert "d1" not in sites.sites or sites.sites["d1"].objects == {}
    assert ledger.published("d1") is None


def test_the_sharded_path_holds_the_lease_and_publishes_once_committed():
    origin, ledger, request = _world()
    sites = FakeSites()
    service = _service(origin, ledger, sites)
    for tier in service.plan(request).content_tiers:
        assert service.copy_shard(request, tier, 0, 1) > 0
    # copied but not committed: the lease is the delivery's, nothing is published yet
    assert ledger.delivery_lease("d1").owner == "S1#accepted"
    assert ledger.published("d1") is None
    assert service.commit(request).status is DeliveryStatus.DELIVERED
    assert ledger.published("d1").sequence == 1 and ledger.delivery_lease("d1") is None
