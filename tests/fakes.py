"""In-memory implementations of ``difusion.ports``, for decision-table tests of services.

Each keeps the rules its adapter keeps with conditional writes (a published sequence only
moves forward, a lease belongs to one delivery, a delivered record is history);
``tests/ledger_contract.py`` runs the same scenario against this fake and the real ledger
on the emulator, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from difusion.adapters.ledger import AlreadyPublished, DifusorBusy, lease_owner
from difusion.adapters.pointer_store import PointerConflict
from difusion.models import (
    DeliveryLease,
    DeliveryOutcome,
    DeliveryRequest,
    DeliveryStatus,
    Difusor,
    PublishedState,
)
from difusion.records import DeliveryRecord
from difusion.versions import Pointer, StoredPointer, slot_prefix
from difusion.window import WindowRecord


@dataclass
class FakeDeliveryLedger:
    """``ports.DeliveryLedger`` and ``ports.DeliveryHistory`` in memory."""

    window_record: WindowRecord = field(default_factory=WindowRecord)
    states: dict[str, PublishedState] = field(default_factory=dict)
    leases: dict[str, DeliveryLease] = field(default_factory=dict)
    deliveries: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    manifests: dict[int, str] = field(default_factory=dict)

    def window(self) -> WindowRecord:
        return self.window_record

    def published(self, difusor_id: str) -> PublishedState | None:
        state = self.states.get(difusor_id)
        return None if state is None else replace(state, lease=self.leases.get(difusor_id))

    def delivery_lease(self, difusor_id: str) -> DeliveryLease | None:
        return self.leases.get(difusor_id)

    def claim(self, request: DeliveryRequest, lease_seconds: int, now: datetime) -> None:
        epoch = int(now.timestamp())
        state = self.states.get(request.difusor_id)
        lease = self.leases.get(request.difusor_id)
        forward = state is None or (
            state.sequence <= request.sequence
            if request.is_redelivery
            else state.sequence < request.sequence
        )
        free = lease is None or lease.until < epoch or lease.owner == lease_owner(request)
        if forward and free:
            self.leases[request.difusor_id] = DeliveryLease(
                lease_owner(request), request.sequence, epoch + lease_seconds
            )
            return
        if not forward:
            raise AlreadyPublished(request.difusor_id)
        assert lease is not None
        raise DifusorBusy(f"{request.difusor_id}: {lease.owner}", lease.until - epoch + 1)

    def start_delivery(self, request: DeliveryRequest, attempt: int, at: datetime) -> None:
        record = self._record(request)
        if record.get("status") == str(DeliveryStatus.DELIVERED):
            raise AlreadyPublished(request.difusor_id)
        record.setdefault("started_at", at.isoformat())
        record.update(
            status=str(DeliveryStatus.IN_PROGRESS),
            attempts=attempt,
            attempt_started_at=at.isoformat(),
        )

    def finish_delivery(
        self, request: DeliveryRequest, outcome: DeliveryOutcome, at: datetime
    ) -> None:
        state = self.states.get(request.difusor_id)
        if state is not None and (
            state.sequence > request.sequence
            or (state.sequence == request.sequence and not request.is_redelivery)
        ):
            raise AlreadyPublished(request.difusor_id)
        self.states[request.difusor_id] = PublishedState(
            request.sequence, request.snapshot_id, request.manifest_key, request.manifest_sha256
        )
        self.leases.pop(request.difusor_id, None)
        record = self._record(request)
        record.pop("last_error", None)
        record.update(
            status=str(DeliveryStatus.DELIVERED),
            objects_copied=outcome.objects_copied,
            objects_deleted=outcome.objects_deleted,
            bytes_copied=outcome.bytes_copied,
            site_version=outcome.site_version or 0,
            slot=outcome.slot,
            finished_at=at.isoformat(),
        )

    def record_delivery_status(
        self, request: DeliveryRequest, status: DeliveryStatus, detail: str, at: datetime
    ) -> None:
        record = self._record(request)
        if record.get("status") != DeliveryStatus.DELIVERED:
            record.update(status=str(status), detail=detail, finished_at=at.isoformat())

    def record_delivery_failure(
        self, request: DeliveryRequest, attempt: int, error: str, final: bool, at: datetime
    ) -> None:
        record = self._record(request)
        if record.get("status") != DeliveryStatus.DELIVERED:
            status = DeliveryStatus.FAILED if final else DeliveryStatus.RETRYING
            record.update(
                status=str(status), attempts=attempt, last_error=error, failed_at=at.isoformat()
            )
        lease = self.leases.get(request.difusor_id)
        if lease is not None and lease.owner == lease_owner(request):
            del self.leases[request.difusor_id]

    def accepted_manifests(self) -> dict[int, str]:
        return dict(self.manifests)

    def delivery_records(self) -> list[DeliveryRecord]:
        """``ports.DeliveryHistory``: in the ledger's order (its sort keys')."""
        return [
            DeliveryRecord.from_item(self.deliveries[key])
            for key in sorted(self.deliveries, key=lambda k: "#".join(filter(None, k)))
        ]

    def record(self, request: DeliveryRequest) -> dict[str, Any]:
        return self.deliveries.get(_key(request), {})

    def _record(self, request: DeliveryRequest) -> dict[str, Any]:
        """The request's record, with what every write of the ledger's sets on it."""
        record = self.deliveries.setdefault(_key(request), {})
        record.update(
            difusor_id=request.difusor_id,
            snapshot_id=request.snapshot_id,
            sequence=request.sequence,
            reason=request.reason,
            delivery_scope=str(request.scope),
        )
        return record


def _key(request: DeliveryRequest) -> tuple[str, str, str]:
    reason = request.reason if request.is_redelivery else ""
    return (request.snapshot_id, request.difusor_id, reason)


@dataclass
class FakeOrigin:
    """``ports.SignedObjects`` in memory."""

    objects: dict[str, bytes] = field(default_factory=dict)
    bucket: str = "origin"

    def get_bytes(self, key: str) -> bytes:
        return self.objects[key]


@dataclass
class FakeRegistry:
    difusores: dict[str, Difusor] = field(default_factory=dict)

    def get(self, difusor_id: str) -> Difusor:
        return self.difusores[difusor_id]

    def all(self) -> list[Difusor]:
        return list(self.difusores.values())

    def active(self) -> list[Difusor]:
        return [d for d in self.difusores.values() if d.status == "active"]


@dataclass
class FakePointerStore:
    """``ports.PointerStore`` in memory, with the KeyValueStore's rules: every write at the
    current ETag, a new ETag per write; ``history`` keeps every pointer written."""

    value: Pointer | None = None
    etag: str = "E0"
    history: list[Pointer] = field(default_factory=list)
    fail_on: str = ""

    def read(self) -> StoredPointer:
        return StoredPointer(self.value, self.etag)

    def write(self, pointer: Pointer, if_match: str) -> str:
        if self.fail_on == "switch" and pointer.previous is not None:
            raise ConnectionError("switch failed")
        if if_match != self.etag:
            if self.value == pointer:
                return self.etag  # the retried write of one already made
            raise PointerConflict("changed since it was read")
        self.value = pointer
        self.etag = f"E{len(self.history) + 1}"
        self.history.append(pointer)
        return self.etag

    @property
    def switches(self) -> list[Pointer]:
        """The writes that made a new version live."""
        seen: set[int] = set()
        made = []
        for pointer in self.history:
            if pointer.live is not None and pointer.live.version not in seen:
                seen.add(pointer.live.version)
                made.append(pointer)
        return made


@dataclass
class FakeSite:
    """One difusor's bucket and version pointer; ``fail_on`` names a step that raises."""

    objects: dict[str, str] = field(default_factory=dict)  # key -> source key
    pointer: FakePointerStore = field(default_factory=FakePointerStore)
    fail_on: str = ""

    def copy_in(
        self,
        *,
        source_bucket: str,
        source_key: str,
        key: str,
        content_type: str,
        sha256: str,
        size: int,
    ) -> None:
        self._maybe_fail("copy")
        self.objects[key] = source_key

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = "bytes"

    def list_keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def delete(self, keys: Sequence[str]) -> int:
        for key in keys:
            self.objects.pop(key, None)
        return len(keys)

    def served(self) -> dict[str, str]:
        """What the site serves: the live version's slot, by path."""
        live = self.pointer.value.live if self.pointer.value else None
        if live is None:
            return {}
        prefix = slot_prefix(live.slot)
        return {k[len(prefix) :]: v for k, v in self.objects.items() if k.startswith(prefix)}

    def _maybe_fail(self, step: str) -> None:
        if self.fail_on == step:
            raise ConnectionError(f"{step} failed")


@dataclass
class FakeSites:
    sites: dict[str, FakeSite] = field(default_factory=dict)

    def open(self, difusor: Difusor) -> FakeSite:
        return self.sites.setdefault(difusor.difusor_id, FakeSite())
