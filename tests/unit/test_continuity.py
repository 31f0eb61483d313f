"""The continuity monitor's rules, without a network: a fake site, the real signatures."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from difusion.content_types import content_type_for
from difusion.continuity import (
    Action,
    CheckOutcome,
    MonitorState,
    NotServed,
    SiteCheck,
    SiteUnreachable,
    VersionMoved,
    advance,
    catch_up_due,
    check_site,
    choose_sample,
    period_start,
    upstream_stalled,
)
from difusion.manifest import Manifest, ManifestFile, PackageInfo
from difusion.models import PublishedState
from difusion.publication import MANIFEST_PATH, SIGNATURE_PATH
from difusion.signing import SecretKey, sign

AT = datetime(2024, 6, 3, 4, 0, tzinfo=UTC)
KEY = SecretKey.generate()


def site(sequence: int = 1, files: int = 40) -> tuple[Manifest, dict[str, bytes]]:
    """A signed site: its manifest and every path it serves."""
    contents = {
        f"data/{i:03}.json": f'{{"n": {i}, "s": {sequence}}}'.encode() for i in range(files)
    }
    contents["index.html"] = b"<html>PREP</html>"
    draft = Manifest.draft(
        election="DIP_LOC_BCS",
        snapshot_id=f"snap{sequence}",
        cut_time=AT + timedelta(minutes=20 * sequence),
        package=PackageInfo("p.zip", "0" * 64, 1),
        files=[
            ManifestFile(p, hashlib.sha256(b).hexdigest(), len(b), content_type_for(p))
            for p, b in contents.items()
        ],
    )
    manifest = draft.chained(
        sequence=sequence,
        previous_manifest_sha256=None if sequence == 1 else "a" * 64,
        created_at=AT,
    )
    body = manifest.canonical_bytes()
    contents[MANIFEST_PATH] = body
    contents[SIGNATURE_PATH] = sign(body, KEY, trusted_comment="t", untrusted_comment="u").encode()
    return manifest, contents


def published(manifest: Manifest) -> PublishedState:
    return PublishedState(manifest.sequence, manifest.snapshot_id, "k", manifest.sha256)


class FakeSite:
    """A versioned site: ``versions`` by number, the highest live; ``switches`` maps a read
    count to a version made live then (the one before stops being routed)."""

    def __init__(
        self,
        served: dict[str, bytes] | None,
        versions: dict[int, dict[str, bytes]] | None = None,
        switches: dict[int, int] | None = None,
    ) -> None:
        self.versions = versions if versions is not None else {7: served} if served else {}
        self.down = served is None and versions is None
        self.live = max(self.versions, default=0)
        self.switches = switches or {}
        self.reads: list[str] = []

    def pin(self, base_url: str) -> tuple[str, int | None]:
        if self.down:
            raise SiteUnreachable("connection refused")
        return f"{base_url}/v/{self.live}", self.live

    def read(self, base_url: str, path: str) -> bytes:
        self.reads.append(path)
        if len(self.reads) in self.switches:
            self.live = self.switches[len(self.reads)]
        if self.down:
            raise SiteUnreachable("connection refused")
        version = int(base_url.rsplit("/v/", 1)[1])
        if version != self.live:
            raise VersionMoved(f"{path} redirected to /v/{self.live}/{path}")
        if path not in self.versions[version]:
            raise NotServed(f"HTTP 404 for {path}")
        return self.versions[version][path]


def check(served: dict[str, bytes] | None, expected: Manifest, sample: int = 0) -> SiteCheck:
    return check_site(
        FakeSite(served), "d", "https://d.example", KEY.public_key, published(expected), sample, "p"
    )


def test_a_faithful_site_passes_with_every_file_hashed():
    manifest, served = site()
    result = check(served, manifest)
    assert result.outcome is CheckOutcome.OK
    assert result.files_checked == len(manifest.files)
    assert (result.served_sequence, result.served_version) == (1, 7)


def test_a_switch_in_the_middle_of_a_check_is_met_by_checking_the_new_version_whole():
    manifest, served = site()
    # Given a site that switches from version 7 to 8 (same files) at the check's third read
    reader = FakeSite(None, versions={7: served, 8: served}, switches={3: 8})
    reader.live = 7
    result = check_site(
        reader, "d", "https://d.example", KEY.public_key, published(manifest), 0, "p"
    )
    # Then the check starts again on version 8 and reads it whole: no mix of two versions
    assert (result.outcome, result.served_version) == (CheckOutcome.OK, 8)
    assert reader.reads.count(MANIFEST_PATH) == 2
    # And a site that keeps switching under the check is "updating", never "altered"
    restless = FakeSite(None, versions={7: served, 8: served, 9: served}, switches={3: 8, 6: 9})
    restless.live = 7
    again = check_site(
        restless, "d", "https://d.example", KEY.public_key, published(manifest), 0, "p"
    )
    assert again.outcome is CheckOutcome.UPDATING and "twice" in again.detail


def test_each_way_a_site_can_fail_has_its_own_outcome():
    manifest, served = site()
    assert check(None, manifest).outcome is CheckOutcome.UNREACHABLE
    no_manifest = {k: v for k, v in served.items() if k != MANIFEST_PATH}
    assert check(no_manifest, manifest).outcome is CheckOutcome.NO_MANIFEST
    forged = {**served, MANIFEST_PATH: served[MANIFEST_PATH].replace(b"snap1", b"snap9")}
    assert check(forged, manifest).outcome is CheckOutcome.BAD_SIGNATURE
    altered = {**served, "data/007.json": b"{}"}
    result = check(altered, manifest)
    assert result.outcome is CheckOutcome.ALTERED and result.altered_paths == ("data/007.json",)
    missing = {k: v for k, v in served.items() if k != "data/008.json"}
    assert check(missing, manifest).altered_paths == ("data/008.json",)


def test_an_older_snapshot_is_stale_and_another_manifest_of_the_same_sequence_is_wrong():
    _, old_site = site(sequence=1)
    newer, _ = site(sequence=2)
    result = check(old_site, newer)
    assert result.outcome is CheckOutcome.STALE
    assert "snap1" in result.detail and "snap2" in result.detail
    _, other_site = site(sequence=2, files=3)
    assert check(other_site, newer).outcome is CheckOutcome.WRONG_MANIFEST


def test_a_newer_signed_snapshot_than_the_ledger_knows_is_a_delivery_finishing():
    _, newer_site = site(sequence=2)
    older, _ = site(sequence=1)
    assert check(newer_site, older).outcome is CheckOutcome.OK


def test_the_sample_always_has_the_entry_page_and_is_reproducible():
    manifest, _ = site(files=200)
    sample = choose_sample(manifest, 10, seed="2024-06-03T04:15:00+00:00/uabcs")
    assert sample[0] == "index.html" and len(sample) == 11
    assert sample == choose_sample(manifest, 10, seed="2024-06-03T04:15:00+00:00/uabcs")
    assert sample != choose_sample(manifest, 10, seed="2024-06-03T04:30:00+00:00/uabcs")
    assert len(choose_sample(manifest, 0, seed="x")) == len(manifest.files)


def failing(outcome: CheckOutcome = CheckOutcome.UNREACHABLE) -> SiteCheck:
    return SiteCheck("d", outcome, "down")


OK = SiteCheck("d", CheckOutcome.OK, "fine")


@given(st.lists(st.booleans(), max_size=30))
def test_suspension_comes_exactly_at_the_third_consecutive_failed_period(history):
    state = MonitorState()
    run = 0
    for period, ok in enumerate(history):
        transition = advance(state, OK if ok else failing(), f"p{period:03}")
        run = 0 if ok else run + 1
        assert (Action.SUSPEND in transition.actions) == (run == 3)
        assert transition.state.consecutive_failures == run
        # An incident opens with the first failure of a run and closes with the recovery
        assert (Action.OPEN_INCIDENT in transition.actions) == (run == 1)
        assert (Action.CLOSE_INCIDENT in transition.actions) == (ok and state.incident_id != "")
        state = transition.state


def test_altered_content_alerts_and_repairs_at_once():
    transition = advance(MonitorState(), failing(CheckOutcome.ALTERED), "p1")
    assert transition.actions == (Action.OPEN_INCIDENT, Action.ALERT, Action.REPAIR)
    assert transition.state.incident_id == "p1#d"


@given(st.lists(st.sampled_from(["ok", "fail", "updating"]), max_size=30))
def test_a_check_during_a_delivery_counts_neither_way(history):
    # Given any run of periods where some checks overlapped a delivery
    with_updates, without = MonitorState(), MonitorState()
    for period, outcome in enumerate(history):
        if outcome == "updating":
            check = failing(CheckOutcome.ALTERED).during_delivery()
            transition = advance(with_updates, check, f"p{period:03}")
            # Then it acts on nothing: no alert, no repair, no incident, no suspension
            assert transition.actions == ()
            assert check.outcome is CheckOutcome.UPDATING and not check.failed
            with_updates = transition.state
            continue
        check = OK if outcome == "ok" else failing()
        with_updates = advance(with_updates, check, f"p{period:03}").state
        without = advance(without, check, f"p{period:03}").state
        # And the count of consecutive failures is that of the periods that decided
        assert with_updates.consecutive_failures == without.consecutive_failures
        assert with_updates.incident_id == without.incident_id


def test_only_altered_files_are_taken_for_a_delivery_in_transit():
    for outcome in CheckOutcome:
        check = failing(outcome) if outcome is not CheckOutcome.OK else OK
        seen = check.during_delivery()
        if outcome is CheckOutcome.ALTERED:
            assert seen.outcome is CheckOutcome.UPDATING and "delivery" in seen.detail
        else:
            assert seen == check  # unreachable, stale, a bad signature: never excused


def test_periods_are_aligned_so_every_run_of_the_same_period_agrees():
    period = timedelta(minutes=15)
    start = period_start(datetime(2024, 6, 3, 4, 29, 59, tzinfo=UTC), period)
    assert start == datetime(2024, 6, 3, 4, 15, tzinfo=UTC)
    assert period_start(datetime(2024, 6, 3, 4, 15, tzinfo=UTC), period) == start


def test_the_upstream_stalls_after_twenty_minutes_without_a_snapshot():
    opened = AT
    limit = timedelta(minutes=20)
    assert upstream_stalled(None, opened, opened + timedelta(minutes=19), limit) is None
    assert upstream_stalled(None, opened, opened + timedelta(minutes=21), limit) == timedelta(
        minutes=21
    )
    # A snapshot accepted before the opening does not count against the window
    before = opened - timedelta(hours=2)
    assert upstream_stalled(before, opened, opened + timedelta(minutes=5), limit) is None
    recent = opened + timedelta(minutes=30)
    assert upstream_stalled(recent, opened, recent + timedelta(minutes=10), limit) is None


# --- a difusor the institute left behind ------------------------------------------------

AFTER = timedelta(minutes=15)  # the replicate function's timeout, its lease's length


def _due(published, *, sent_minutes_ago=20, lease_seconds_left=None, head=5):
    now = AT + timedelta(hours=1)
    lease = None if lease_seconds_left is None else int(now.timestamp()) + lease_seconds_left
    return catch_up_due(
        published, head, now - timedelta(minutes=sent_minutes_ago), lease, now, AFTER
    )


def test_a_difusor_behind_the_head_once_its_delivery_had_its_time_gets_it_again():
    assert _due(4) == "publishes #4, the head #5 was sent 20 min ago"
    assert _due(None) == "publishes nothing, the head #5 was sent 20 min ago"
    # an expired lease is a worker that died: Lambda ended it by its timeout
    assert _due(4, lease_seconds_left=-1) is not None


def test_nothing_is_sent_again_while_a_delivery_may_still_run_or_when_nothing_is_owed():
    assert _due(5) is None and _due(6) is None  # up to date (or a newer head elsewhere)
    assert _due(4, sent_minutes_ago=14) is None  # its delivery may still be running
    assert _due(4, lease_seconds_left=0) is None  # a live lease: a worker holds it
    assert _due(4, lease_seconds_left=600) is None


def test_a_site_suspended_with_no_pointer_is_reinstated_above_the_clock_floor():
    from difusion.services.continuity import ContinuityService
    from difusion.versions import version_floor
    from tests.fakes import FakePointerStore

    # Given a site whose pointer was lost (its store replaced) when it is suspended
    store = FakePointerStore()
    now = datetime(2027, 6, 7, 5, 0, tzinfo=UTC)
    ContinuityService._point_to_notice(store, "aviso-1", version_floor(now))
    # Then the notice is served, and the versions after reinstatement start above the floor
    assert store.value is not None and store.value.notice == "aviso-1"
    assert store.value.last_version == version_floor(now) > 100_000_000
    # and a retried period changes nothing
    ContinuityService._point_to_notice(store, "aviso-1", version_floor(now))
    assert len(store.history) == 1
