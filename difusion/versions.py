"""Whole-site versions: the pointer a difusor's edge function routes by, and the two slots.

A difusor's bucket holds two slots, ``_v/a/`` and ``_v/b/``, each one whole site. The pointer
(one key, ``live``, in the distribution's KeyValueStore) says which slot serves which site
version; the viewer-request function (``edge/viewer_request.js``) routes every request by it.
A delivery refreshes the slot the pointer does not name and then makes it live with one
compare-and-set write: that write is the publication. Design and sources: ``docs/serving.md``.

Everything here is pure: the pointer's format (the same rules the function applies, so a
pointer written here is never one the function refuses), and the steps of a switch.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

POINTER_KEY = "live"
SLOTS = ("a", "b")
SLOT_ROOT = "_v/"
NOTICE_ROOT = "_aviso/"
# The function's own limits (edge/viewer_request.js): versions of at most 15 digits and
# notice ids it accepts in a URI; a KeyValueStore value is at most 1 KB.
_MAX_VERSION = 10**15 - 1
_NOTICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TAG = re.compile(r"^([0-9a-f]{16})?$")
MAX_VALUE_BYTES = 1024
# A site with no pointer (a new site, or one whose store was replaced or whose key was
# deleted) numbers its first version from the clock: the seconds since this epoch.
VERSION_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def version_floor(now: datetime) -> int:
    """What a site with no pointer numbers its versions above: the seconds since
    :data:`VERSION_EPOCH`. Versions then grow by one per switch, so every version a lost
    pointer ever routed is below the floor when the site starts again as long as it switched
    fewer times than seconds went by since its first version: a site switches once per cut
    (at most a few an hour) plus repairs and retries, so it holds by orders of magnitude,
    and a version in a URL, and the edge's cache entries keyed by it, never name other
    bytes. (Only a clock frozen between switches, as tests' controlled clocks are, could
    break it.)"""
    return max(int((now - VERSION_EPOCH).total_seconds()), 0)


def delivery_tag(owner: str) -> str:
    """A short name for one delivery (its lease owner: every attempt of it is the same), kept
    on the version it made live so a retry knows its switch already happened."""
    return hashlib.sha256(owner.encode()).hexdigest()[:16]


class PointerError(ValueError):
    """A pointer that is not one the edge function would serve."""


class SiteState(StrEnum):
    LIVE = "live"
    SUSPENDED = "suspended"


def slot_prefix(slot: str) -> str:
    """The bucket prefix of ``slot``: every key of a version lives under it."""
    if slot not in SLOTS:
        raise PointerError(f"no slot {slot!r}: slots are {', '.join(SLOTS)}")
    return f"{SLOT_ROOT}{slot}/"


def notice_prefix(notice_id: str) -> str:
    if not _NOTICE_ID.match(notice_id):
        raise PointerError(f"notice id {notice_id!r} is not one the edge function routes")
    return f"{NOTICE_ROOT}{notice_id}/"


def other_slot(slot: str) -> str:
    slot_prefix(slot)
    return SLOTS[1 - SLOTS.index(slot)]


def _positive(value: object, what: str, top: int = _MAX_VERSION) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= top:
        raise PointerError(f"{what} {value!r} is not a positive integer")
    return value


@dataclass(frozen=True)
class Held:
    """A signed manifest whose files a slot holds: its chain sequence and SHA-256."""

    sequence: int
    manifest_sha256: str

    def __post_init__(self) -> None:
        _positive(self.sequence, "sequence", 10**12)
        if not isinstance(self.manifest_sha256, str) or not _SHA256.match(self.manifest_sha256):
            raise PointerError(f"manifest_sha256 {self.manifest_sha256!r} is not a SHA-256")

    def as_json(self) -> dict[str, object]:
        return {"sequence": self.sequence, "manifest_sha256": self.manifest_sha256}

    @classmethod
    def from_json(cls, data: object) -> Held:
        if not isinstance(data, dict):
            raise PointerError("a held manifest is an object")
        return cls(data.get("sequence"), data.get("manifest_sha256"))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Placement:
    """One site version in one slot, and the signed manifest it publishes.

    The function reads ``version`` and ``slot``; the manifest makes the pointer say which
    signed manifest a site serves (for an operator or auditor reading the store) and tells
    the next delivery what the slot holds."""

    version: int
    slot: str
    held: Held
    delivery: str = ""  # the delivery that switched to it (delivery_tag), to know a retry

    def __post_init__(self) -> None:
        _positive(self.version, "version")
        slot_prefix(self.slot)
        if not isinstance(self.delivery, str) or not _TAG.match(self.delivery):
            raise PointerError(f"delivery {self.delivery!r} is not a delivery tag")

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = {"version": self.version, "slot": self.slot}
        data.update(self.held.as_json())
        if self.delivery:
            data["delivery"] = self.delivery
        return data

    @classmethod
    def from_json(cls, data: object) -> Placement:
        if not isinstance(data, dict):
            raise PointerError("a placement is an object")
        return cls(
            data.get("version"),  # type: ignore[arg-type]
            data.get("slot"),  # type: ignore[arg-type]
            Held.from_json(data),
            data.get("delivery", ""),
        )


@dataclass(frozen=True)
class Standby:
    """What the slot no version is routed to may hold: the files of these manifests, mixed
    (a refresh toward the last one was under way), or ``holds=None``: unknown (a first
    version, a reinstatement, a repaired slot), refreshed in full. ``retired_at`` (epoch
    seconds) is when its last version stopped being routed."""

    slot: str
    holds: tuple[Held, ...] | None
    retired_at: int = 0

    def __post_init__(self) -> None:
        slot_prefix(self.slot)

    def as_json(self) -> dict[str, object]:
        holds = None if self.holds is None else [h.as_json() for h in self.holds]
        return {"slot": self.slot, "holds": holds, "retired_at": self.retired_at}

    @classmethod
    def from_json(cls, data: object) -> Standby:
        if not isinstance(data, dict):
            raise PointerError("the standby slot is an object")
        holds = data.get("holds")
        if holds is not None and not isinstance(holds, list):
            raise PointerError("a standby slot's holds is a list")
        retired_at = data.get("retired_at", 0)
        if isinstance(retired_at, bool) or not isinstance(retired_at, int) or retired_at < 0:
            raise PointerError(f"retired_at {retired_at!r} is not a time")
        return cls(
            data.get("slot"),  # type: ignore[arg-type]
            None if holds is None else tuple(Held.from_json(h) for h in holds),
            retired_at,
        )


# Beyond this many manifests a standby slot may hold a mix of, it is refreshed in full.
MAX_HELD = 4


@dataclass(frozen=True)
class Pointer:
    """What a difusor's edge serves: a live version (and the one before it, still routable
    while pages opened from it finish loading), or the suspension notice.

    ``last_version`` is the highest version this site has had: versions are never reused for
    the site, also across a suspension (a version in a URL always means the same bytes).
    ``standby`` says what the slot nobody is routed to holds, when no previous version is
    routed there (with one, that slot holds exactly the previous version)."""

    state: SiteState
    live: Placement | None = None
    previous: Placement | None = None
    notice: str | None = None
    last_version: int = 0
    standby: Standby | None = None

    def __post_init__(self) -> None:
        if self.state is SiteState.SUSPENDED:
            if self.notice is None or not _NOTICE_ID.match(self.notice):
                raise PointerError(f"a suspended site names a valid notice, not {self.notice!r}")
            if self.live is not None or self.previous is not None or self.standby is not None:
                raise PointerError("a suspended site routes no version")
            return
        if self.live is None:
            raise PointerError("a live site names its live version")
        if self.notice is not None:
            raise PointerError("a live site shows no notice")
        if self.previous is not None and (
            self.previous.slot == self.live.slot or self.previous.version == self.live.version
        ):
            raise PointerError("the previous version must be another version in the other slot")
        if self.standby is not None and (
            self.previous is not None or self.standby.slot == self.live.slot
        ):
            raise PointerError("only a slot no version is routed to is on standby")
        if self.last_version < self.top_version:
            raise PointerError("last_version is below a version the pointer routes")

    @property
    def top_version(self) -> int:
        placed = [p.version for p in (self.live, self.previous) if p is not None]
        return max(placed, default=0)

    @property
    def routed_slots(self) -> frozenset[str]:
        """Slots the edge may read: never written while routed."""
        return frozenset(p.slot for p in (self.live, self.previous) if p is not None)

    @classmethod
    def first(cls, slot: str, held: Held, after: int = 0, delivery: str = "") -> Pointer:
        """A site's first live version (or its first after a suspension: ``after`` is the
        last version it had, so the new one is above it); the other slot's content is
        unknown."""
        version = after + 1
        return cls(
            SiteState.LIVE,
            live=Placement(version, slot, held, delivery),
            last_version=version,
            standby=Standby(other_slot(slot), None),
        )

    @classmethod
    def suspended(cls, notice: str, last_version: int) -> Pointer:
        return cls(SiteState.SUSPENDED, notice=notice, last_version=last_version)

    def standby_slot(self) -> str:
        """The slot a delivery refreshes: the one that is not live."""
        if self.live is None:
            raise PointerError("a suspended site has no live slot")
        return other_slot(self.live.slot)

    def standby_holds(self) -> tuple[Held, ...] | None:
        """What the standby slot may hold (``None``: unknown)."""
        if self.previous is not None:
            return (self.previous.held,)
        return None if self.standby is None else self.standby.holds

    def retired(self, toward: Held, at: int) -> Pointer:
        """The same live version, the previous one no longer routed, and its slot noted as
        being refreshed ``toward`` a manifest (at epoch ``at``): a refresh cut short leaves
        the slot a mix the next delivery knows how to refresh."""
        if self.live is None:
            raise PointerError("a suspended site is reinstated, not refreshed")
        holds = self.standby_holds()
        if holds is not None:
            holds = tuple(dict.fromkeys((*holds, toward)))
            if len(holds) > MAX_HELD:
                holds = None
        if self.previous is None and self.standby is not None:
            retired_at = self.standby.retired_at  # retired already, by an earlier attempt
        else:
            retired_at = at
        return Pointer(
            SiteState.LIVE,
            live=self.live,
            last_version=self.last_version,
            standby=Standby(self.standby_slot(), holds, retired_at),
        )

    def switched(
        self, held: Held, *, keep_previous: bool = True, delivery: str = "", at: int = 0
    ) -> Pointer:
        """The standby slot made live as the next version. The live one stays routable as
        the previous version, unless ``keep_previous`` is false (a repair: the live slot may
        hold altered files, so it becomes a standby of unknown content, retired ``at`` this
        switch: edges that have not seen it yet still route there, so the next delivery
        waits the margin before rewriting it)."""
        if self.live is None:
            raise PointerError("a suspended site is reinstated, not switched")
        if self.previous is not None:
            raise PointerError("retire the previous version before refreshing its slot")
        version = self.last_version + 1
        live = Placement(version, self.standby_slot(), held, delivery)
        if keep_previous:
            return Pointer(SiteState.LIVE, live=live, previous=self.live, last_version=version)
        return Pointer(
            SiteState.LIVE,
            live=live,
            last_version=version,
            standby=Standby(self.live.slot, None, at),
        )

    def to_text(self) -> str:
        """The value stored under :data:`POINTER_KEY` (compact JSON, at most 1 KB)."""
        data: dict[str, object] = {"state": str(self.state)}
        if self.state is SiteState.SUSPENDED:
            data["notice"] = self.notice
        else:
            assert self.live is not None
            data["live"] = self.live.as_json()
            if self.previous is not None:
                data["previous"] = self.previous.as_json()
            if self.standby is not None:
                data["standby"] = self.standby.as_json()
        data["last_version"] = self.last_version
        text = json.dumps(data, separators=(",", ":"), sort_keys=True)
        if len(text.encode()) > MAX_VALUE_BYTES:
            raise PointerError(f"pointer of {len(text.encode())} bytes: a KVS value is 1 KB")
        return text

    @classmethod
    def from_text(cls, text: str) -> Pointer:
        """Parse a stored pointer; :class:`PointerError` when the function would refuse it."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise PointerError(f"the pointer is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise PointerError("the pointer is a JSON object")
        try:
            state = SiteState(str(data.get("state")))
        except ValueError:
            raise PointerError(f"unknown site state {data.get('state')!r}") from None
        last = data.get("last_version", 0)
        if isinstance(last, bool) or not isinstance(last, int) or last < 0:
            raise PointerError(f"last_version {last!r} is not a version")
        if state is SiteState.SUSPENDED:
            return cls(state, notice=data.get("notice"), last_version=last)
        live = Placement.from_json(data.get("live"))
        previous = data.get("previous")
        placed_previous = None if previous is None else Placement.from_json(previous)
        standby = data.get("standby")
        top = max(live.version, placed_previous.version if placed_previous else 0)
        return cls(
            state,
            live=live,
            previous=placed_previous,
            last_version=max(last, top),
            standby=None if standby is None else Standby.from_json(standby),
        )


@dataclass(frozen=True)
class StoredPointer:
    """A pointer as read from its store, with the store's ETag for a compare-and-set."""

    pointer: Pointer | None  # None: the store holds no pointer yet (a new site)
    etag: str
