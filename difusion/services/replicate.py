"""Replicate: publish a signed snapshot to one difusor as a whole new version of its site.

The difusor's bucket holds two slots; its edge routes every request by one pointer
(``difusion.versions``, design in ``docs/serving.md``). A delivery retires the version in the
slot nobody will need (the previous one), waits until every edge has stopped routing to it,
refreshes that slot with what changed since what it held, and switches the pointer to it with
one compare-and-set: that write is the publication. Nobody ever reads a slot while it is
written, so no visitor, monitor or verifier sees a mix of two cuts, and nothing needs an
invalidation."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from difusion.adapters.ledger import AlreadyPublished
from difusion.adapters.ledger.table import lease_owner as lease_owner_of
from difusion.adapters.origin import PUBLIC_KEY_KEY, signature_key, staged_key
from difusion.adapters.pointer_store import PointerConflict
from difusion.errors import DeliveryError
from difusion.manifest import Manifest, sha256_hex
from difusion.models import (
    DeliveryOutcome,
    DeliveryRequest,
    DeliveryScope,
    DeliveryStatus,
    Difusor,
    DifusorStatus,
)
from difusion.ports import DeliveryLedger, PointerStore, Registry, SignedObjects, Site, Sites
from difusion.publication import (
    CopyStep,
    PublicationPlan,
    SourceKind,
    Tier,
    plan_publication,
)
from difusion.signing import PublicKey, verify
from difusion.times import parse_iso
from difusion.versions import (
    SLOTS,
    Held,
    Pointer,
    SiteState,
    StoredPointer,
    delivery_tag,
    slot_prefix,
    version_floor,
)
from difusion.window import PublicationWindow, Verdict

logger = logging.getLogger(__name__)
_SIGNED_CACHE_ENTRIES = 8


class ReplicateService:
    def __init__(
        self,
        origin: SignedObjects,
        ledger: DeliveryLedger,
        registry: Registry,
        sites: Sites,
        *,
        window: PublicationWindow,
        copy_concurrency: int,
        lease_seconds: int,
        retire_wait_seconds: float = 0.0,
        shards: int = 1,
        pinned_key: PublicKey | None = None,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._window = window
        self._origin = origin
        self._ledger = ledger
        self._registry = registry
        self._sites = sites
        self._copy_concurrency = copy_concurrency
        self._shards = max(shards, 1)
        self._pinned_key = pinned_key
        self._signed_cache: dict[str, bytes] = {}
        self._history_cache: tuple[int, dict[int, str]] = (0, {})
        self._lease_seconds = lease_seconds
        self._retire_wait = retire_wait_seconds
        self._clock = clock
        self._sleep = sleep

    def deliver(self, request: DeliveryRequest, attempt: int) -> DeliveryOutcome:
        """Deliver ``request``; raise for the queue to retry (the step records the failure)."""
        now = self._clock()
        difusor, refused = self._admit(request, now)
        if refused is not None:
            return refused
        # Another delivery's lease raises DifusorBusy: the message returns when it ends.
        try:
            self._ledger.claim(request, self._lease_seconds, now)
            self._ledger.start_delivery(request, attempt, now)
        except AlreadyPublished:
            return self._already_published(request)
        try:
            outcome = self._publish(request, self._sites.open(difusor))
            self._ledger.finish_delivery(request, outcome, self._clock())
        except AlreadyPublished:
            return self._already_published(request)
        logger.info(
            "snapshot delivered",
            extra={
                "difusor_id": request.difusor_id,
                "snapshot_id": request.snapshot_id,
                "copied": outcome.objects_copied,
                "deleted": outcome.objects_deleted,
            },
        )
        return outcome

    def hold_lease(self, request: DeliveryRequest) -> Callable[[int], None]:
        """The renewal of ``request``'s lease for its step's heartbeat: while the delivery
        works, its lease never lapses; once it returns or dies, nothing renews it and it
        ends within one hold (a retry of the same delivery takes it over at once anyway)."""

        def renew(_hold: int) -> None:  # to the lease's own length (by default one hold)
            self._ledger.renew_lease(request, self._lease_seconds, self._clock())

        return renew

    def record_failure(
        self, request: DeliveryRequest, attempt: int, final: bool, error: str
    ) -> None:
        """A failed attempt of ``request``, whatever failed (the step's wrapper calls this):
        ``retrying``, or ``failed`` on the last attempt; the lease is released if it held it."""
        self._ledger.record_delivery_failure(request, attempt, error, final, self._clock())

    def _admit(
        self, request: DeliveryRequest, now: datetime
    ) -> tuple[Difusor, DeliveryOutcome | None]:
        """Whether ``request`` may write to its difusor at ``now`` (the attempt's one
        reading of the clock, also its lease's and its recorded start): an active difusor,
        inside the window (defence in depth: whatever sent it, nothing is written
        outside). When not, the ledger says why and the outcome says so."""
        difusor = self._registry.get(request.difusor_id)
        if difusor.status is not DifusorStatus.ACTIVE:
            detail = f"difusor is {difusor.status}; nothing delivered"
            return difusor, self._not_published(request, DeliveryStatus.SKIPPED, detail)
        decision = self._window.decide(parse_iso(request.cut_time), now, self._ledger.window())
        if decision.verdict is Verdict.PUBLISH:
            return difusor, None
        status = DeliveryStatus.HELD if decision.verdict is Verdict.HOLD else DeliveryStatus.REFUSED
        logger.warning(
            "delivery not published",
            extra={
                "difusor_id": request.difusor_id,
                "snapshot_id": request.snapshot_id,
                "status": str(status),
                "reason": decision.reason,
            },
        )
        return difusor, self._not_published(request, status, decision.reason)

    def _not_published(
        self, request: DeliveryRequest, status: DeliveryStatus, detail: str
    ) -> DeliveryOutcome:
        self._ledger.record_delivery_status(request, status, detail, self._clock())
        return DeliveryOutcome(request.difusor_id, request.snapshot_id, status, detail=detail)

    def _already_published(self, request: DeliveryRequest) -> DeliveryOutcome:
        state = self._ledger.published(request.difusor_id)
        if state is not None and state.sequence == request.sequence:
            # A duplicate of a delivery that already happened: nothing to do, nothing to record.
            return DeliveryOutcome(
                request.difusor_id,
                request.snapshot_id,
                DeliveryStatus.DELIVERED,
                detail="already delivered",
            )
        newer = state.snapshot_id if state else "?"
        detail = f"difusor already publishes newer snapshot {newer}"
        self._ledger.record_delivery_status(
            request, DeliveryStatus.SUPERSEDED, detail, self._clock()
        )
        return DeliveryOutcome(
            request.difusor_id, request.snapshot_id, DeliveryStatus.SUPERSEDED, detail=detail
        )

    def _publish(self, request: DeliveryRequest, site: Site) -> DeliveryOutcome:
        """Refresh the standby slot (every shard of every content tier, tier after tier),
        then commit: the signed manifest, removals, the switch."""
        standby = self._prepare(request, site)
        if isinstance(standby, DeliveryOutcome):
            return standby
        plan = self.plan(request, standby.holds)
        count = self._shards
        for tier in plan.content_tiers:
            with ThreadPoolExecutor(max_workers=count) as shards:
                # Each shard is what one Distributed Map item runs at federal scale.
                list(
                    shards.map(
                        lambda index, tier=tier: self._copy(
                            site, standby.prefix, plan.shard(tier, index, count)
                        ),
                        range(count),
                    )
                )
        return self._commit(request, site, plan, standby)

    # --- the slot a delivery refreshes ----------------------------------------------------

    def _prepare(self, request: DeliveryRequest, site: Site) -> _Standby | DeliveryOutcome:
        """Where ``request`` writes: the slot no version is routed to, retired toward the
        target (so a refresh cut short is known to have mixed it) and out of every edge's
        routing for the configured margin. A delivery whose switch already happened (its
        answer, or the ledger's record, lost with a crash) gets its outcome instead."""
        store = site.pointer
        target = Held(request.sequence, request.manifest_sha256)
        tag = delivery_tag(lease_owner_of(request))
        for _ in range(len(SLOTS) + 2):
            stored = store.read()
            pointer = stored.pointer
            if pointer is not None and pointer.live is not None and pointer.live.delivery == tag:
                return self._switched_outcome(request, pointer)
            if pointer is None or pointer.state is SiteState.SUSPENDED:
                # Nothing routes to either slot: write one in full, then make it live.
                return _Standby(SLOTS[0], None, stored)
            holds = pointer.standby_holds()
            retired = pointer.standby is not None and (
                holds is None
                or target in holds
                or request.scope is DeliveryScope.FULL  # refreshed in full anyway
            )
            if not retired:
                pointer = pointer.retired(target, at=int(self._clock().timestamp()))
                try:
                    stored = StoredPointer(pointer, store.write(pointer, stored.etag))
                except PointerConflict:
                    continue  # another shard of this delivery retired it: read again
            self._wait_until_retired(pointer)
            full = request.scope is DeliveryScope.FULL
            return _Standby(
                pointer.standby_slot(), None if full else pointer.standby_holds(), stored
            )
        raise PointerConflict(f"{request.difusor_id}: the version pointer kept changing")

    def _wait_until_retired(self, pointer: Pointer) -> None:
        """Every edge stops routing a retired version within the store's propagation time,
        which AWS does not document: wait the configured margin from the retirement (a retry
        waits only what is left of it)."""
        retired_at = pointer.standby.retired_at if pointer.standby is not None else 0
        left = retired_at + self._retire_wait - self._clock().timestamp()
        if left > 0:
            self._sleep(left)

    def _switched_outcome(self, request: DeliveryRequest, pointer: Pointer) -> DeliveryOutcome:
        assert pointer.live is not None
        return DeliveryOutcome(
            difusor_id=request.difusor_id,
            snapshot_id=request.snapshot_id,
            status=DeliveryStatus.DELIVERED,
            site_version=pointer.live.version,
            slot=pointer.live.slot,
            detail="switched already",
        )

    # --- a delivery in shards (docs/scale.md): plan, copy every shard, commit once -------

    def plan(
        self, request: DeliveryRequest, holds: tuple[Held, ...] | None = None
    ) -> PublicationPlan:
        """What ``request`` writes into a slot that may hold the files of the manifests in
        ``holds`` (``None``: unknown, everything is copied), deterministically: every shard
        and the commit agree."""
        manifest_bytes = self._signed_object(request.manifest_key)
        if sha256_hex(manifest_bytes) != request.manifest_sha256:
            raise DeliveryError(f"{request.manifest_key} in the origin is not the signed manifest")
        signature = self._signed_object(signature_key(request.manifest_key))
        public_key = self._origin.get_bytes(PUBLIC_KEY_KEY)
        origin_key = PublicKey.from_text(public_key.decode())
        if self._pinned_key is not None and origin_key != self._pinned_key:
            raise DeliveryError(
                f"the origin's public key {origin_key.key_id_text} is not the pinned "
                f"PREP_PUBLIC_KEY {self._pinned_key.key_id_text}; nothing published"
            )
        # Never publish a manifest that does not verify, whatever put it in the origin.
        verify(manifest_bytes, signature.decode("utf-8"), origin_key)
        target = Manifest.from_bytes(manifest_bytes)
        bases = self._manifests(holds, target.sequence)
        # The chain's history: every accepted manifest the slot may not have yet.
        since = min((base.sequence for base in bases), default=0) if bases is not None else 0
        history = {
            sequence: key
            for sequence, key in self._history_up_to(target.sequence).items()
            if since < sequence <= target.sequence
        }
        plan = plan_publication(
            target,
            bases,
            manifest_bytes=len(manifest_bytes),
            signature_bytes=len(signature),
            public_key_bytes=len(public_key),
            history=history,
        ).with_sources(
            {
                SourceKind.MANIFEST: request.manifest_key,
                SourceKind.SIGNATURE: signature_key(request.manifest_key),
                SourceKind.PUBLIC_KEY: PUBLIC_KEY_KEY,
            }
        )
        if request.scope is DeliveryScope.REPAIR:
            # The altered files are copied again even where the slot should have them.
            plan = plan.also_copying(target, request.paths)
        return plan

    def _manifests(self, holds: tuple[Held, ...] | None, up_to: int) -> list[Manifest] | None:
        """The manifests a slot holds, from the origin (each checked against the hash the
        pointer names: a pointer is in the difusor's account). ``None`` when unknown."""
        if holds is None:
            return None
        keys = self._history_up_to(max([up_to, *(held.sequence for held in holds)]))
        manifests = []
        for held in holds:
            key = keys.get(held.sequence)
            if key is None:
                return None  # not a manifest of this chain: the slot is unknown
            body = self._signed_object(key)
            if sha256_hex(body) != held.manifest_sha256:
                return None
            manifests.append(Manifest.from_bytes(body))
        return manifests

    def _signed_object(self, key: str) -> bytes:
        """A manifest or signature from the origin. They are written once and never change,
        so an execution environment that delivers one snapshot to several difusores reads
        each once (the public key, which a rotation replaces, is always read)."""
        cached = self._signed_cache.get(key)
        if cached is None:
            cached = self._origin.get_bytes(key)
            if len(self._signed_cache) >= _SIGNED_CACHE_ENTRIES:
                self._signed_cache.pop(next(iter(self._signed_cache)))
            self._signed_cache[key] = cached
        return cached

    def _history_up_to(self, sequence: int) -> dict[int, str]:
        """The chain's manifests up to ``sequence``: fixed once that sequence is accepted."""
        if self._history_cache[0] < sequence:
            self._history_cache = (sequence, self._ledger.accepted_manifests())
        return {s: k for s, k in self._history_cache[1].items() if s <= sequence}

    def copy_shard(
        self, request: DeliveryRequest, tier: Tier, index: int, count: int, attempt: int = 1
    ) -> int:
        """Copy shard ``index`` of ``count`` of one content tier of ``request`` into the
        standby slot; every shard of a tier finishes before any of the next starts, and
        nothing is visible until :meth:`commit` switches. The same gate as :meth:`deliver`:
        a difusor that is not active, a window that is not open, or a newer publication
        copies nothing; every shard holds the delivery's lease. Idempotent: a retried shard
        copies the same objects again. Returns how many objects it copied."""
        now = self._clock()
        difusor, refused = self._admit(request, now)
        if refused is not None:
            return 0
        try:
            self._ledger.claim(request, self._lease_seconds, now)
            self._ledger.start_delivery(request, attempt, now)
        except AlreadyPublished:
            return 0
        site = self._sites.open(difusor)
        standby = self._prepare(request, site)
        if isinstance(standby, DeliveryOutcome):
            return 0
        steps = self.plan(request, standby.holds).shard(tier, index, count)
        self._copy(site, standby.prefix, steps)
        return len(steps)

    def commit(self, request: DeliveryRequest, attempt: int = 1) -> DeliveryOutcome:
        """Once every shard is done: the signed manifest, removals, the switch, and the
        ledger's record — behind the same gate and lease as :meth:`deliver`."""
        now = self._clock()
        difusor, refused = self._admit(request, now)
        if refused is not None:
            return refused
        try:
            self._ledger.claim(request, self._lease_seconds, now)
            site = self._sites.open(difusor)
            standby = self._prepare(request, site)
            if isinstance(standby, DeliveryOutcome):
                outcome = standby
            else:
                plan = self.plan(request, standby.holds)
                outcome = self._commit(request, site, plan, standby)
            self._ledger.finish_delivery(request, outcome, self._clock())
        except AlreadyPublished:
            return self._already_published(request)
        return outcome

    def _commit(
        self, request: DeliveryRequest, site: Site, plan: PublicationPlan, standby: _Standby
    ) -> DeliveryOutcome:
        for step in plan.signed:  # in order: key, signature, manifest
            self._copy_step(site, standby.prefix, step)
        deletions = [standby.prefix + path for path in plan.deletions]
        if standby.holds is None:  # unknown content: whatever the plan does not write goes
            planned = {standby.prefix + step.path for step in plan.copies}
            deletions = sorted(set(site.list_keys(standby.prefix)) - planned)
        deleted = site.delete(deletions)
        live = self._switch(request, site.pointer, standby)
        return DeliveryOutcome(
            difusor_id=request.difusor_id,
            snapshot_id=request.snapshot_id,
            status=DeliveryStatus.DELIVERED,
            objects_copied=len(plan.copies),
            objects_deleted=deleted,
            bytes_copied=plan.bytes_copied,
            site_version=live.live.version if live.live else None,
            slot=standby.slot,
        )

    def _switch(self, request: DeliveryRequest, store: PointerStore, standby: _Standby) -> Pointer:
        """The publication: one compare-and-set of the pointer, at the ETag the slot was
        prepared at (a write in between, by anyone, stops the delivery for a retry)."""
        target = Held(request.sequence, request.manifest_sha256)
        tag = delivery_tag(lease_owner_of(request))
        before = standby.stored.pointer
        if before is None or before.state is SiteState.SUSPENDED:
            after = before.last_version if before is not None else version_floor(self._clock())
            switched = Pointer.first(standby.slot, target, after=after, delivery=tag)
        else:
            switched = before.switched(
                target,
                keep_previous=request.scope is not DeliveryScope.REPAIR,
                delivery=tag,
                at=int(self._clock().timestamp()),
            )
        store.write(switched, standby.stored.etag)
        logger.info(
            "version switched",
            extra={
                "difusor_id": request.difusor_id,
                "snapshot_id": request.snapshot_id,
                "site_version": switched.live.version if switched.live else None,
                "slot": standby.slot,
            },
        )
        return switched

    def _copy(self, site: Site, prefix: str, steps: tuple[CopyStep, ...]) -> None:
        with ThreadPoolExecutor(max_workers=self._copy_concurrency) as pool:
            list(pool.map(lambda step: self._copy_step(site, prefix, step), steps))

    def _copy_step(self, site: Site, prefix: str, step: CopyStep) -> None:
        site.copy_in(
            source_bucket=self._origin.bucket,
            source_key=step.source_key or staged_key(step.sha256),
            key=prefix + step.path,
            content_type=step.content_type,
            sha256=step.sha256,
            size=step.size,
        )


@dataclass(frozen=True)
class _Standby:
    """The slot a delivery writes, what it may hold, and the pointer it was prepared at."""

    slot: str
    holds: tuple[Held, ...] | None
    stored: StoredPointer

    @property
    def prefix(self) -> str:
        return slot_prefix(self.slot)
