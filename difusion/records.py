"""The ledger's records as the closing record, the operator's commands and the services
read them: typed, instead of DynamoDB items keyed by sort-key prefixes.

Each record is built from a stored item by ``from_item``, which takes the item as boto3
returns it (numbers as ``Decimal``) or already made plain, and leaves a field the item
lacks as ``None`` (an empty tuple for lists): a record is whatever its writers stored,
and the ledger's writers (``difusion.adapters.ledger``) store a field only once its step
has run. Field names are the items' attribute names.

Pure: no boto3 here, so the closing record and the rules import these freely.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Self

from difusion.models import DeliveryStatus, SnapshotStatus


def _int(value: Any) -> int | None:
    """A stored number (``Decimal`` from boto3) as an int; absent stays ``None``."""
    return None if value is None else int(value)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, set | frozenset):  # a DynamoDB string set: no order of its own
        return tuple(sorted(str(v) for v in value))
    return () if value is None else tuple(str(v) for v in value)


# How a field is read from an item, by its annotation (a string: postponed annotations).
_READERS = {
    "int | None": _int,
    "str | None": _str,
    "bool | None": _bool,
    "tuple[str, ...]": _strings,
}


def _values(cls: type[Any], item: Mapping[str, Any], *identity: str) -> dict[str, Any]:
    """``cls``'s fields read from ``item``: the ``identity`` ones as strings (empty when
    absent), every other one by the reader of its annotation."""
    values: dict[str, Any] = {}
    for field in fields(cls):
        if field.name in identity:
            values[field.name] = str(item.get(field.name, ""))
        elif str(field.type) in _READERS:
            values[field.name] = _READERS[str(field.type)](item.get(field.name))
        else:
            raise TypeError(f"{cls.__name__}.{field.name}: no reader for {field.type}")
    return values


def as_item(record: Any) -> dict[str, Any]:
    """The record as a plain item (no keys), for JSON: the fields it has, lists as lists."""
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in asdict(record).items()
        if value is not None
    }


@dataclass(frozen=True)
class RejectionRecord:
    """A refused package: a rejected snapshot's own record, or (``REJECTION#`` items) a
    re-upload refused because its snapshot was already accepted."""

    snapshot_id: str
    status: str | None = None
    object_key: str | None = None
    rejection_code: str | None = None
    rejection_reason: str | None = None
    rejected_at: str | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Self:
        return cls(**_values(cls, item, "snapshot_id"))


@dataclass(frozen=True)
class SnapshotRecord:
    """One snapshot (``SNAPSHOT#`` items), from its arrival to its acceptance or rejection;
    a withdrawal entry of the chain is one too (``withdraws`` names what it withdrew)."""

    snapshot_id: str
    status: str | None = None
    sequence: int | None = None
    cut_time: str | None = None
    # the package, as ingest received and validated it
    object_key: str | None = None
    object_version: str | None = None
    package_sha256: str | None = None
    package_size: int | None = None
    file_count: int | None = None
    total_bytes: int | None = None
    draft_key: str | None = None
    received_at: str | None = None
    validated_at: str | None = None
    # signed and accepted
    signing_key: str | None = None
    signing_at: str | None = None
    manifest_key: str | None = None
    manifest_sha256: str | None = None
    previous_manifest_sha256: str | None = None
    accepted_at: str | None = None
    held_at: str | None = None
    held_reason: str | None = None
    # rejected
    rejection_code: str | None = None
    rejection_reason: str | None = None
    rejected_at: str | None = None
    # a step that gave up on it
    last_error: str | None = None
    failed_step: str | None = None
    attempts: int | None = None
    failed_at: str | None = None
    # a withdrawal entry: what it withdrew, and the sequence whose files it publishes again
    withdraws: str | None = None
    withdraws_sequence: int | None = None
    restores_sequence: int | None = None
    # a withdrawn snapshot: the entry that withdrew it (the reason is on both)
    withdrawal_reason: str | None = None
    withdrawn_at: str | None = None
    withdrawn_by_sequence: int | None = None
    withdrawal_error: str | None = None
    withdrawal_failed_at: str | None = None
    withdrawal_gave_up: bool | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Self:
        return cls(**_values(cls, item, "snapshot_id"))

    @property
    def accepted(self) -> bool:
        return self.status == SnapshotStatus.ACCEPTED

    @property
    def rejection(self) -> RejectionRecord | None:
        """Its rejection, when it is rejected."""
        if self.status != SnapshotStatus.REJECTED:
            return None
        return RejectionRecord(
            snapshot_id=self.snapshot_id,
            status=self.status,
            object_key=self.object_key,
            rejection_code=self.rejection_code,
            rejection_reason=self.rejection_reason,
            rejected_at=self.rejected_at,
        )


def all_rejections(
    snapshots: Iterable[SnapshotRecord], reuploads: Iterable[RejectionRecord]
) -> list[RejectionRecord]:
    """Every refusal of the night: rejected snapshots, then refused re-uploads."""
    return [*(r for s in snapshots if (r := s.rejection) is not None), *reuploads]


@dataclass(frozen=True)
class DeliveryRecord:
    """One delivery of a snapshot to a difusor (``DELIVERY#`` items); a redelivery (a
    repair, a reinstatement, a release) has its own."""

    snapshot_id: str
    difusor_id: str
    sequence: int | None = None
    reason: str | None = None
    delivery_scope: str | None = None
    status: str | None = None
    attempts: int | None = None
    started_at: str | None = None
    attempt_started_at: str | None = None
    finished_at: str | None = None
    failed_at: str | None = None
    objects_copied: int | None = None
    objects_deleted: int | None = None
    bytes_copied: int | None = None
    site_version: int | None = None
    slot: str | None = None
    detail: str | None = None
    last_error: str | None = None
    # The monitor sent it again (a dead worker's delivery, or one that gave up): when, why.
    catch_up_periods: tuple[str, ...] = ()
    last_catch_up_at: str | None = None
    last_catch_up_why: str | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Self:
        return cls(**_values(cls, item, "snapshot_id", "difusor_id"))

    @property
    def delivered(self) -> bool:
        return self.status == DeliveryStatus.DELIVERED


@dataclass(frozen=True)
class CheckRecord:
    """One period's check of a difusor's site (``CHECK#`` items)."""

    difusor_id: str
    period: str | None = None
    outcome: str | None = None
    detail: str | None = None
    served_sequence: int | None = None
    served_snapshot_id: str | None = None
    served_version: int | None = None  # the site version the check read (docs/serving.md)
    files_checked: int | None = None
    altered_paths: tuple[str, ...] = ()
    checked_at: str | None = None
    # what the period still owes for it (the monitor's own bookkeeping)
    incident_for_actions: str | None = None
    actions_pending: tuple[str, ...] = ()

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Self:
        return cls(**_values(cls, item, "difusor_id"))


@dataclass(frozen=True)
class IncidentRecord:
    """An incident of a difusor (``INCIDENT#``) or of the upstream
    (``UPSTREAM#INCIDENT#``), from its start to its end."""

    incident_id: str | None = None
    difusor_id: str | None = None
    incident_kind: str | None = None
    cause: str | None = None
    detail: str | None = None
    started_at: str | None = None
    periods_failed: int | None = None
    causes: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    last_update_at: str | None = None
    ended_at: str | None = None
    resolution: str | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Self:
        return cls(**_values(cls, item))
