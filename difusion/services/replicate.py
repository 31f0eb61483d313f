"""Replicate: publish a signed snapshot into one difusor's bucket and invalidate its cache."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from difusion.adapters.ledger import AlreadyPublished
from difusion.adapters.origin import PUBLIC_KEY_KEY, signature_key, staged_key
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
from difusion.ports import DeliveryLedger, Registry, SignedObjects, Site, Sites
from difusion.publication import (
    CopyStep,
    PublicationPlan,
    SourceKind,
    Tier,
    plan_publication,
)
from difusion.signing import PublicKey, verify
from difusion.times import parse_iso
from difusion.window import PublicationWindow, Verdict

logger = logging.getLogger(__name__)
_SIGNED_CACHE_ENTRIES = 8


def invalidation_reference(request: DeliveryRequest) -> str:
    """CloudFront's ``CallerReference`` for ``request``'s invalidation: the same for every
    attempt of one delivery (CloudFront then returns the invalidation it already made),
    different for any other delivery to the difusor (a redelivery has its own reason)."""
    reason = hashlib.sha256(request.reason.encode()).hexdigest()[:16]
    return f"{request.snapshot_id}.{reason}"


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
        """Copy every shard of every content tier (tier after tier), then commit."""
        plan = self.plan(request)
        count = self._shards
        for tier in plan.content_tiers:
            with ThreadPoolExecutor(max_workers=count) as shards:
                # Each shard is what one Distributed Map item runs at federal scale.
                list(
                    shards.map(
                        lambda index, tier=tier: self._copy(site, plan.shard(tier, index, count)),
                        range(count),
                    )
                )
        return self._commit(request, site, plan)

    # --- a delivery in shards (docs/scale.md): plan, copy every shard, commit once -------

    def plan(self, request: DeliveryRequest) -> PublicationPlan:
        """What ``request`` writes, deterministically: every shard and the commit agree."""
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
        current = None
        if request.scope is DeliveryScope.DELTA:
            state = self._ledger.published(request.difusor_id)
            if state is not None:  # nothing published yet: everything is copied
                current = Manifest.from_bytes(self._signed_object(state.manifest_key))
        # The chain's history: every accepted manifest the difusor does not have yet.
        since = current.sequence if current is not None else 0
        history = {
            sequence: key
            for sequence, key in self._history_up_to(target.sequence).items()
            if since < sequence <= target.sequence
        }
        # A full or repair delivery trusts nothing in the difusor's bucket: it copies from
        # scratch (only the named files, for a repair) instead of from what should be there.
        plan = plan_publication(
            target,
            current,
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
        return plan.only(request.paths) if request.scope is DeliveryScope.REPAIR else plan

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
        """Copy shard ``index`` of ``count`` of one content tier of ``request``; every shard
        of a tier finishes before any of the next starts, and nothing is visible as published
        until :meth:`commit`. The same gate as :meth:`deliver`: a difusor that is not active,
        a window that is not open, or a newer publication copies nothing; every shard holds
        the delivery's lease. Idempotent: a retried shard copies the same objects again.
        Returns how many objects it copied."""
        now = self._clock()
        difusor, refused = self._admit(request, now)
        if refused is not None:
            return 0
        try:
            self._ledger.claim(request, self._lease_seconds, now)
            self._ledger.start_delivery(request, attempt, now)
        except AlreadyPublished:
            return 0
        steps = self.plan(request).shard(tier, index, count)
        self._copy(self._sites.open(difusor), steps)
        return len(steps)

    def commit(self, request: DeliveryRequest, attempt: int = 1) -> DeliveryOutcome:
        """Once every shard is done: the signed manifest, removals, the invalidation, and
        the ledger's record — behind the same gate and lease as :meth:`deliver`."""
        now = self._clock()
        difusor, refused = self._admit(request, now)
        if refused is not None:
            return refused
        try:
            self._ledger.claim(request, self._lease_seconds, now)
            site = self._sites.open(difusor)
            outcome = self._commit(request, site, self.plan(request))
            self._ledger.finish_delivery(request, outcome, self._clock())
        except AlreadyPublished:
            return self._already_published(request)
        return outcome

    def _commit(
        self, request: DeliveryRequest, site: Site, plan: PublicationPlan
    ) -> DeliveryOutcome:
        for step in plan.signed:  # in order: key, signature, manifest
            self._copy_step(site, step)
        if request.scope is DeliveryScope.FULL:
            plan = plan.removing_all_but_planned(site.list_keys())
        deleted = site.delete(plan.deletions)
        # One caller reference per delivery: a retry after a lost answer or a crash gets
        # the invalidation already made instead of a second one.
        invalidation_id = site.invalidate_all(invalidation_reference(request), self._sleep)
        return DeliveryOutcome(
            difusor_id=request.difusor_id,
            snapshot_id=request.snapshot_id,
            status=DeliveryStatus.DELIVERED,
            objects_copied=len(plan.copies),
            objects_deleted=deleted,
            bytes_copied=plan.bytes_copied,
            invalidation_id=invalidation_id,
        )

    def _copy(self, site: Site, steps: tuple[CopyStep, ...]) -> None:
        with ThreadPoolExecutor(max_workers=self._copy_concurrency) as pool:
            list(pool.map(lambda step: self._copy_step(site, step), steps))

    def _copy_step(self, site: Site, step: CopyStep) -> None:
        site.copy_in(
            source_bucket=self._origin.bucket,
            source_key=step.source_key or staged_key(step.sha256),
            key=step.path,
            content_type=step.content_type,
            sha256=step.sha256,
            size=step.size,
        )
