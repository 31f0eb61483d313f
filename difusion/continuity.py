"""The continuity monitor's rules (the call for difusores): every update period each active
difusor's public site is checked; three consecutive failed periods suspend it.

A check reads the site the way the public does, over HTTPS: the signed manifest, its
signature, and a sample of the files it lists. It fails when the site is unreachable, serves
no manifest, a bad signature, an older or a different manifest than the one last delivered
to it, or a file that does not hash to what the manifest says (an integrity incident).

Everything here is pure: the fetching goes through a :class:`SiteReader` the caller gives.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from difusion.errors import ManifestInvalid, SignatureInvalid
from difusion.manifest import Manifest, sha256_hex
from difusion.models import PublishedState
from difusion.publication import MANIFEST_PATH, SIGNATURE_PATH
from difusion.signing import PublicKey, verify

SUSPEND_AFTER_PERIODS = 3  # the call: three consecutive update periods
# Pages a visitor sees first are always in the sample; the rest is drawn at random.
ALWAYS_CHECKED = ("index.html",)


class SiteUnreachable(Exception):
    """The site did not answer, or answered with a server error."""


class NotServed(Exception):
    """The site answered that it does not serve this path (404/403)."""


class VersionMoved(SiteUnreachable):
    """A request under a pinned version was redirected: the version stopped being routed
    while the site was read (a switch happened meanwhile)."""


class SiteReader(Protocol):
    def pin(self, base_url: str) -> tuple[str, int | None]:
        """The base URL of the version ``base_url`` serves now, and that version: where
        the signed manifest redirects to (``None`` for a site without versions)."""
        ...

    def read(self, base_url: str, path: str) -> bytes:
        """The body served at ``path``; raise SiteUnreachable, NotServed or VersionMoved
        (a redirect: nothing under a pinned version is ever redirected while it is
        routed)."""
        ...


class CheckOutcome(StrEnum):
    OK = "ok"
    UNREACHABLE = "unreachable"
    NO_MANIFEST = "no_manifest"
    BAD_SIGNATURE = "bad_signature"
    STALE = "stale"  # an older snapshot than the one delivered
    WRONG_MANIFEST = "wrong_manifest"  # signed, but not the delivered manifest
    ALTERED = "altered"  # served files differ from the signed manifest
    # Files differed while a delivery was writing them: the check saw the update in
    # transit, not the site. Neither a failure nor a success; the next period decides.
    UPDATING = "updating"

    @property
    def is_integrity_incident(self) -> bool:
        return self is CheckOutcome.ALTERED

    @property
    def inconclusive(self) -> bool:
        return self is CheckOutcome.UPDATING


@dataclass(frozen=True)
class SiteCheck:
    difusor_id: str
    outcome: CheckOutcome
    detail: str
    served_sequence: int | None = None
    served_snapshot_id: str = ""
    files_checked: int = 0
    altered_paths: tuple[str, ...] = ()
    served_version: int | None = None  # the site version read (docs/serving.md)

    @property
    def ok(self) -> bool:
        return self.outcome is CheckOutcome.OK

    @property
    def failed(self) -> bool:
        """A failed period: neither ok nor inconclusive."""
        return not self.ok and not self.outcome.inconclusive

    def during_delivery(self) -> SiteCheck:
        """This check, seen to overlap a delivery to the site: files that differ from the
        manifest are in transit, not altered (an integrity incident needs a quiet site)."""
        if self.outcome is not CheckOutcome.ALTERED:
            return self
        return replace(
            self,
            outcome=CheckOutcome.UPDATING,
            detail=f"a delivery was writing to the site while it was checked ({self.detail})",
        )


def choose_sample(manifest: Manifest, size: int, seed: str) -> list[str]:
    """The files a check re-hashes: the entry pages plus ``size`` drawn at random.

    ``size`` 0 means every file. The draw is seeded by the period and difusor, so an auditor
    can reproduce which files a check read.
    """
    paths = [f.path for f in manifest.files]
    if size <= 0 or size >= len(paths):
        return paths
    fixed = [p for p in ALWAYS_CHECKED if p in manifest.files_by_path()]
    rest = [p for p in paths if p not in fixed]
    return fixed + sorted(random.Random(seed).sample(rest, min(size, len(rest))))


def check_site(
    reader: SiteReader,
    difusor_id: str,
    base_url: str,
    public_key: PublicKey,
    expected: PublishedState,
    sample_size: int,
    seed: str,
) -> SiteCheck:
    """Check what ``base_url`` serves against ``expected``, the last delivery to it: one
    version of the site, the one its signed manifest leads to, read whole (manifest,
    signature, files). A switch in the middle of the check is met by checking the new
    version once; a second one makes the check ``updating``."""
    moved = ""
    for _ in range(2):
        try:
            return _check_version(
                reader, difusor_id, base_url, public_key, expected, sample_size, seed
            )
        except VersionMoved as exc:
            moved = str(exc)
    return SiteCheck(
        difusor_id,
        CheckOutcome.UPDATING,
        f"the site switched versions twice while checked: {moved}",
    )


def _check_version(
    reader: SiteReader,
    difusor_id: str,
    base_url: str,
    public_key: PublicKey,
    expected: PublishedState,
    sample_size: int,
    seed: str,
) -> SiteCheck:
    try:
        base_url, version = reader.pin(base_url)
        manifest_bytes = reader.read(base_url, MANIFEST_PATH)
        signature = reader.read(base_url, SIGNATURE_PATH)
    except VersionMoved:
        raise
    except SiteUnreachable as exc:
        return SiteCheck(difusor_id, CheckOutcome.UNREACHABLE, str(exc))
    except NotServed as exc:
        return SiteCheck(difusor_id, CheckOutcome.NO_MANIFEST, f"no signed manifest: {exc}")
    try:
        verify(manifest_bytes, signature.decode("utf-8", "replace"), public_key)
        manifest = Manifest.from_bytes(manifest_bytes)
    except (SignatureInvalid, ManifestInvalid) as exc:
        return SiteCheck(difusor_id, CheckOutcome.BAD_SIGNATURE, str(exc))

    def served(outcome: CheckOutcome, detail: str, **extra: object) -> SiteCheck:
        return SiteCheck(
            difusor_id,
            outcome,
            detail,
            served_sequence=manifest.sequence,
            served_snapshot_id=manifest.snapshot_id,
            served_version=version,
            **extra,  # type: ignore[arg-type]
        )

    if manifest.sequence < expected.sequence:
        return served(
            CheckOutcome.STALE,
            f"serves snapshot {manifest.snapshot_id} (#{manifest.sequence}); "
            f"{expected.snapshot_id} (#{expected.sequence}) was delivered",
        )
    if manifest.sequence == expected.sequence and manifest.sha256 != expected.manifest_sha256:
        return served(
            CheckOutcome.WRONG_MANIFEST,
            f"manifest #{manifest.sequence} is not the one delivered "
            f"(sha256 {manifest.sha256[:16]}…, expected {expected.manifest_sha256[:16]}…)",
        )
    # A newer sequence than the ledger's is a delivery finishing as we look: its signature
    # verified, so it is the institute's; its files are checked the same way.
    listed = manifest.files_by_path()
    altered: list[str] = []
    sample = choose_sample(manifest, sample_size, seed)
    for path in sample:
        try:
            body = reader.read(base_url, path)
        except NotServed:
            altered.append(path)
            continue
        except VersionMoved:
            raise
        except SiteUnreachable as exc:
            return served(CheckOutcome.UNREACHABLE, f"{path}: {exc}")
        if sha256_hex(body) != listed[path].sha256:
            altered.append(path)
    if altered:
        return served(
            CheckOutcome.ALTERED,
            f"{len(altered)} of {len(sample)} checked files differ from the signed manifest: "
            + ", ".join(altered[:5]),
            files_checked=len(sample),
            altered_paths=tuple(altered),
        )
    return served(
        CheckOutcome.OK,
        f"serves {manifest.snapshot_id} (#{manifest.sequence}); {len(sample)} files verified",
        files_checked=len(sample),
    )


# --- consecutive periods -----------------------------------------------------------------


class Action(StrEnum):
    OPEN_INCIDENT = "open_incident"
    ALERT = "alert"  # an integrity incident: UCSI is told at once
    REPAIR = "repair"  # redeliver the altered files
    SUSPEND = "suspend"
    CLOSE_INCIDENT = "close_incident"


@dataclass(frozen=True)
class MonitorState:
    """What the monitor remembers about one difusor between periods."""

    consecutive_failures: int = 0
    incident_id: str = ""  # the open incident, if any
    last_period: str = ""


@dataclass(frozen=True)
class Transition:
    state: MonitorState
    actions: tuple[Action, ...] = field(default_factory=tuple)


def advance(
    state: MonitorState,
    check: SiteCheck,
    period: str,
    threshold: int = SUSPEND_AFTER_PERIODS,
) -> Transition:
    """The monitor's memory after ``check`` in ``period``, and what it must do now."""
    if check.outcome.inconclusive:  # counts neither way: failures and incident stay
        return Transition(replace(state, last_period=period), ())
    if check.ok:
        actions = (Action.CLOSE_INCIDENT,) if state.incident_id else ()
        return Transition(MonitorState(0, "", period), actions)
    failures = state.consecutive_failures + 1
    actions_list: list[Action] = []
    incident_id = state.incident_id
    if not incident_id:
        incident_id = f"{period}#{check.difusor_id}"
        actions_list.append(Action.OPEN_INCIDENT)
    if check.outcome.is_integrity_incident:
        actions_list += [Action.ALERT, Action.REPAIR]
    if failures == threshold:
        actions_list.append(Action.SUSPEND)
    return Transition(
        replace(state, consecutive_failures=failures, incident_id=incident_id, last_period=period),
        tuple(actions_list),
    )


def period_start(now: datetime, period: timedelta) -> datetime:
    """The start of the update period ``now`` falls in (periods are aligned to the epoch)."""
    seconds = int(period.total_seconds())
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=now.tzinfo)


def upstream_stalled(
    last_snapshot_at: datetime | None, opened_at: datetime, now: datetime, limit: timedelta
) -> timedelta | None:
    """How long the upstream has been silent, if longer than ``limit`` (at least three
    updates an hour: 20 minutes); ``None`` when it is not stalled."""
    since = max(last_snapshot_at, opened_at) if last_snapshot_at else opened_at
    silence = now - since
    return silence if silence > limit else None


# --- a difusor the institute left behind -------------------------------------------------


def catch_up_due(
    published_sequence: int | None,
    head_sequence: int,
    sent_at: datetime,
    lease_until: int | None,
    now: datetime,
    after: timedelta,
) -> str | None:
    """Why the head must be sent to a difusor again (``None``: it need not be).

    A difusor publishing an older sequence than the head, once the head's delivery has had
    ``after`` (the replicate function's timeout) since it was sent (``sent_at``: accepted,
    or released at the opening) and no delivery holds a live lease on it (a live one's
    heartbeat renews it). What is left is a delivery that gave up into the DLQ, or one
    whose retry has not come yet (a dead worker's message returns within one hold).
    """
    if published_sequence is not None and published_sequence >= head_sequence:
        return None
    if now - sent_at < after:
        return None
    if lease_until is not None and lease_until >= int(now.timestamp()):
        return None
    behind = "nothing" if published_sequence is None else f"#{published_sequence}"
    waited = int((now - sent_at).total_seconds() // 60)
    return f"publishes {behind}, the head #{head_sequence} was sent {waited} min ago"
