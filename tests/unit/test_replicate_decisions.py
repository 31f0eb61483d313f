"""ReplicateService.deliver, decision by decision, on in-memory fakes (tests/fakes.py):
what it publishes, what it records, what it raises for the queue to retry."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from difusion.adapters.ledger import DifusorBusy, lease_owner
from difusion.adapters.origin import PUBLIC_KEY_KEY, manifest_key, signature_key, staged_key
from difusion.adapters.pointer_store import PointerConflict
from difusion.manifest import Manifest, ManifestFile, PackageInfo
from difusion.models import (
    DeliveryLease,
    DeliveryRequest,
    DeliveryScope,
    DeliveryStatus,
    Difusor,
    DifusorStatus,
    Head,
    PublishedState,
)
from difusion.publication import MANIFEST_PATH
from difusion.services.replicate import ReplicateService
from difusion.signing import SecretKey, sign
from difusion.versions import Held, Pointer, version_floor
from difusion.window import PublicationWindow, WindowRecord, WindowState
from tests.fakes import (
    FakeDeliveryLedger,
    FakeOrigin,
    FakeRegistry,
    FakeSites,
)
from tests.ledger_contract import exercise_delivery_ledger

NOW = datetime(2027, 6, 7, 4, 0, tzinfo=UTC)
# a new site's first version, numbered from the clock (difusion.versions.version_floor)
FIRST = version_floor(NOW) + 1
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


def _service(
    origin, ledger, sites, difusor=DIFUSOR, now=NOW, clock=None, slept=None, copy_concurrency=2
):
    """Replicate over fakes; with ``slept`` (a list), a 60-second retire wait whose sleeps
    it records."""
    return ReplicateService(
        origin,
        ledger,
        FakeRegistry({"d1": difusor}),
        sites,
        window=WINDOW,
        copy_concurrency=copy_concurrency,
        lease_seconds=900,
        retire_wait_seconds=0 if slept is None else 60,
        clock=clock or (lambda: now),
        sleep=(lambda _: None) if slept is None else slept.append,
    )


def test_an_active_difusor_in_the_open_window_gets_the_snapshot_as_its_first_version():
    origin, ledger, request = _world()
    sites = FakeSites()
    outcome = _service(origin, ledger, sites).deliver(request, attempt=1)
    assert outcome.status is DeliveryStatus.DELIVERED and outcome.objects_copied >= 3
    site = sites.sites["d1"]
    # the whole site in slot a, made live by one pointer write
    assert {"f0.json", "f1.json", "f2.json", MANIFEST_PATH} <= set(site.served())
    assert all(key.startswith("_v/a/") for key in site.objects)
    assert site.pointer.history == [site.pointer.value]
    live = site.pointer.value.live
    assert (live.version, live.slot, live.held) == (FIRST, "a", Held(1, request.manifest_sha256))
    assert (outcome.site_version, outcome.slot) == (FIRST, "a")
    assert ledger.published("d1").sequence == 1 and ledger.delivery_lease("d1") is None
    assert ledger.record(request)["status"] == "delivered"
    assert ledger.record(request)["site_version"] == FIRST


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


def test_a_failed_attempt_is_recorded_releases_its_lease_and_the_retry_switches_once():
    origin, ledger, request = _world()
    sites = FakeSites()
    service = _service(origin, ledger, sites)
    finish = ledger.finish_delivery
    lost = []

    def finish_once_lost(request, outcome, at):
        if not lost:
            lost.append(outcome.site_version)
            raise ConnectionResetError("answer lost")
        finish(request, outcome, at)

    ledger.finish_delivery = finish_once_lost  # type: ignore[method-assign]
    with pytest.raises(ConnectionResetError):
        service.deliver(request, 1)
    # the step's wrapper records the failure: retrying, lease released
    service.record_failure(request, 1, final=False, error="ConnectionResetError: answer lost")
    assert ledger.record(request)["status"] == "retrying"
    assert ledger.delivery_lease("d1") is None
    # the retry finds its own switch made: it records it, and switches nothing again
    retry = service.deliver(request, 2)
    assert (retry.site_version, retry.detail) == (lost[0], "switched already")
    assert len(sites.sites["d1"].pointer.history) == 1
    assert ledger.record(request)["status"] == "delivered"


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
    assert len(sites.sites["d1"].pointer.history) == 1


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


# --- whole-site versions (docs/serving.md) ------------------------------------------------


def _second_cut(origin, ledger, changed: dict[str, str]):
    """Cut 2: the first one's files with ``changed`` (path -> hash), signed and accepted."""
    first = Manifest.from_bytes(origin.objects[ledger.manifests[1]])
    files = {f.path: f for f in first.files}
    for path, digest in changed.items():
        files[path] = ManifestFile(path, digest, 10, "application/json")
    manifest = Manifest.draft(
        election="E",
        snapshot_id="S2",
        cut_time=NOW - timedelta(minutes=2),
        package=PackageInfo("p2.zip", "0" * 64, 1),
        files=list(files.values()),
    ).chained(sequence=2, previous_manifest_sha256=first.sha256, created_at=NOW)
    body = manifest.canonical_bytes()
    key = manifest_key(2, "S2")
    origin.objects[key] = body
    origin.objects[signature_key(key)] = sign(
        body, KEY, trusted_comment="t", untrusted_comment="u"
    ).encode()
    ledger.manifests[2] = key
    head = Head(2, "S2", manifest.cut_time, key, manifest.sha256, "0" * 64)
    return DeliveryRequest.for_head("E", "d1", head)


def test_a_later_cut_is_refreshed_into_the_other_slot_then_switched_with_one_write():
    origin, ledger, first = _world()
    sites = FakeSites()
    clock = [NOW]
    slept: list[float] = []
    service = _service(origin, ledger, sites, clock=lambda: clock[0], slept=slept)
    service.deliver(first, 1)
    second = _second_cut(origin, ledger, {"f1.json": "e" * 64})
    # When cut 2 is delivered
    clock[0] += timedelta(minutes=10)
    outcome = service.deliver(second, 1)
    site = sites.sites["d1"]
    # Then slot b got everything (it was empty: unknown), and the switch made it the next
    # version
    assert (outcome.site_version, outcome.slot) == (FIRST + 1, "b")
    pointer = site.pointer.value
    assert pointer.live.held == Held(2, second.manifest_sha256)
    assert pointer.previous.held == Held(1, first.manifest_sha256)  # still routable
    assert site.served()["f1.json"] == staged_key("e" * 64)
    # and version 1's slot was never written meanwhile
    assert all(
        not key.startswith("_v/a/") or v != staged_key("e" * 64) for key, v in site.objects.items()
    )
    # The first delivery had nothing to retire; this one retired nothing either (nothing
    # routed to slot b), so nobody waited
    assert slept == []
    # When cut 3 comes, slot a (version 1) is retired first, then refreshed with only the
    # files that differ from cut 1, after the margin
    third = _third_cut(origin, ledger, second)
    clock[0] += timedelta(minutes=10)
    copied_before = dict(site.objects)
    outcome = service.deliver(third, 1)
    assert (outcome.site_version, outcome.slot) == (FIRST + 2, "a")
    retire, switch = site.pointer.history[-2:]
    assert retire.previous is None and retire.standby.slot == "a"
    assert retire.standby.holds == (Held(1, first.manifest_sha256), Held(3, third.manifest_sha256))
    assert slept == [60]
    assert switch.live.held.sequence == 3 and switch.previous.version == FIRST + 1
    rewritten = {k for k, v in site.objects.items() if copied_before.get(k) != v}
    # f1 changed in cut 2 and f2 in cut 3: both differ from what slot a held (cut 1)
    assert {k for k in rewritten if not k.startswith("_v/a/.well-known")} == {
        "_v/a/f1.json",
        "_v/a/f2.json",
    }


def _third_cut(origin, ledger, second_request):
    second = Manifest.from_bytes(origin.objects[ledger.manifests[2]])
    files = {f.path: f for f in second.files}
    files["f2.json"] = ManifestFile("f2.json", "d" * 64, 10, "application/json")
    manifest = Manifest.draft(
        election="E",
        snapshot_id="S3",
        cut_time=NOW - timedelta(minutes=1),
        package=PackageInfo("p3.zip", "0" * 64, 1),
        files=list(files.values()),
    ).chained(sequence=3, previous_manifest_sha256=second.sha256, created_at=NOW)
    body = manifest.canonical_bytes()
    key = manifest_key(3, "S3")
    origin.objects[key] = body
    origin.objects[signature_key(key)] = sign(
        body, KEY, trusted_comment="t", untrusted_comment="u"
    ).encode()
    ledger.manifests[3] = key
    head = Head(3, "S3", manifest.cut_time, key, manifest.sha256, "0" * 64)
    return DeliveryRequest.for_head("E", "d1", head)


def test_a_refresh_cut_short_is_finished_by_the_retry_without_waiting_the_margin_again():
    origin, ledger, first = _world()
    sites = FakeSites()
    slept: list[float] = []
    clock = [NOW]

    def service():
        return _service(
            origin, ledger, sites, clock=lambda: clock[0], slept=slept, copy_concurrency=1
        )

    service().deliver(first, 1)
    second = _second_cut(origin, ledger, {"f1.json": "e" * 64})
    service().deliver(second, 1)
    third = _third_cut(origin, ledger, second)
    # Given the delivery of cut 3 dies while copying into slot a (after the retirement)
    site = sites.sites["d1"]
    site.fail_on = "copy"
    with pytest.raises(ConnectionError):
        service().deliver(third, 1)
    assert slept == [60]
    assert site.pointer.value.live.version == FIRST + 1  # nothing switched: visitors see cut 2
    # When the retry runs two minutes later
    site.fail_on = ""
    clock[0] += timedelta(minutes=2)
    outcome = service().deliver(third, 2)
    # Then it does not retire again nor wait (the margin has passed), and switches once
    assert slept == [60]
    assert outcome.site_version == FIRST + 2
    assert [p.live.version - FIRST for p in site.pointer.history] == [0, 1, 1, 2]
    assert site.served()["f2.json"] == staged_key("d" * 64)


def test_a_pointer_someone_else_wrote_is_never_overwritten():
    origin, ledger, first = _world()
    sites = FakeSites()
    service = _service(origin, ledger, sites)
    service.deliver(first, 1)
    second = _second_cut(origin, ledger, {"f1.json": "e" * 64})
    site = sites.sites["d1"]
    write = site.pointer.write

    def someone_writes_first(pointer, if_match):
        # another writer (a manual change, a bug) changes the store just before the switch
        if pointer.previous is not None:
            write(replace(site.pointer.value, last_version=FIRST + 9), site.pointer.etag)
        return write(pointer, if_match)

    site.pointer.write = someone_writes_first  # type: ignore[method-assign]
    with pytest.raises(PointerConflict):
        service.deliver(second, 1)
    assert site.pointer.value.live.version == FIRST
    assert site.pointer.value.last_version == FIRST + 9


def test_a_repair_republishes_the_live_cut_as_a_new_version_and_trusts_no_altered_slot():
    origin, ledger, first = _world()
    sites = FakeSites()
    service = _service(origin, ledger, sites)
    service.deliver(first, 1)
    site = sites.sites["d1"]
    site.objects["_v/a/f0.json"] = "tampered"
    repair = replace(first, reason="repair:p1", scope=DeliveryScope.REPAIR, paths=("f0.json",))
    outcome = service.deliver(repair, 1)
    pointer = site.pointer.value
    # Then the next version serves the same manifest from slot b, with the file as signed
    live = (outcome.site_version, pointer.live.slot, pointer.live.held.sequence)
    assert live == (FIRST + 1, "b", 1)
    assert site.served()["f0.json"] == staged_key(f"{0:064x}")
    # and slot a, where the altered file is, is neither routed nor trusted
    assert pointer.previous is None and pointer.standby_holds() is None


def test_the_slot_a_repair_stopped_routing_is_rewritten_only_after_the_margin():
    origin, ledger, first = _world()
    sites = FakeSites()
    clock, slept = [NOW], []
    service = _service(origin, ledger, sites, clock=lambda: clock[0], slept=slept)
    service.deliver(first, 1)
    # Given a repair that moved the site off slot a (edges not yet told still route there)
    repair = replace(first, reason="repair:p1", scope=DeliveryScope.REPAIR, paths=("f0.json",))
    service.deliver(repair, 1)
    assert sites.sites["d1"].pointer.value.standby.retired_at == int(NOW.timestamp())
    # When the next cut comes ten seconds later
    clock[0] += timedelta(seconds=10)
    outcome = service.deliver(_second_cut(origin, ledger, {"f1.json": "e" * 64}), 1)
    # Then it waited what was left of the margin before rewriting slot a
    assert slept == [50] and outcome.slot == "a"


def test_a_suspended_site_is_reinstated_with_a_full_version_above_every_earlier_one():
    origin, ledger, first = _world()
    sites = FakeSites()
    service = _service(origin, ledger, sites)
    service.deliver(first, 1)
    site = sites.sites["d1"]
    site.objects["_v/a/stale.html"] = "left from before"
    site.pointer.write(Pointer.suspended("aviso-1", FIRST + 4), site.pointer.etag)
    full = replace(first, reason="reinstated:2024", scope=DeliveryScope.FULL)
    outcome = service.deliver(full, 1)
    pointer = site.pointer.value
    assert outcome.site_version == FIRST + 5 and pointer.previous is None
    assert pointer.standby.holds is None  # the other slot predates the suspension
    # a full refresh of the slot it writes removes what the cut does not list
    assert pointer.live.slot == "a" and "_v/a/stale.html" not in site.objects
    assert set(site.served()) >= {"f0.json", "f1.json", "f2.json", MANIFEST_PATH}


def test_a_site_whose_pointer_was_lost_starts_above_every_version_it_had():
    # Given a site live at its first version, whose store is then replaced (or its key
    # deleted): the next delivery finds no pointer
    origin, ledger, first = _world()
    sites = FakeSites()
    clock = [NOW]
    service = _service(origin, ledger, sites, clock=lambda: clock[0])
    service.deliver(first, 1)
    site = sites.sites["d1"]
    lost = site.pointer.value.last_version
    site.pointer.value = None
    # When cut 2 is delivered ten minutes later
    clock[0] += timedelta(minutes=10)
    second = _second_cut(origin, ledger, {"f1.json": "e" * 64})
    outcome = service.deliver(second, 1)
    # Then its version is above the lost one (the edge's cache entries for that one, and
    # the URLs that name it, never name these bytes), and the other slot is not trusted
    assert outcome.site_version == version_floor(clock[0]) + 1 > lost
    assert site.pointer.value.standby_holds() is None
