"""The domain's records: difusores, snapshots, deliveries, and the messages between steps."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class DifusorStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    RETIRED = "retired"


@dataclass(frozen=True)
class Difusor:
    """A difusor oficial as the registry knows it."""

    difusor_id: str
    name: str
    account_id: str
    bucket: str
    distribution_id: str
    role_arn: str
    external_id: str
    public_url: str
    status: DifusorStatus = DifusorStatus.ACTIVE
    status_reason: str = ""  # why it is suspended, for the public list and the record
    status_since: str = ""
    # The KeyValueStore of its distribution, holding the version pointer (docs/serving.md).
    kvs_arn: str = ""

    def to_item(self) -> dict[str, Any]:
        item = asdict(self)
        item["status"] = str(self.status)
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Difusor:
        fields = {k: str(item[k]) for k in cls.__dataclass_fields__ if k in item}
        fields["status"] = DifusorStatus(fields.get("status", DifusorStatus.ACTIVE))
        return cls(**fields)  # type: ignore[arg-type]


class SnapshotStatus(StrEnum):
    RECEIVED = "received"
    VALIDATED = "validated"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FAILED = "failed"  # a step gave up on it: its message is in that step's dead letters


class DeliveryStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    DELIVERED = "delivered"
    RETRYING = "retrying"
    FAILED = "failed"
    SUPERSEDED = "superseded"
    SKIPPED = "skipped"
    HELD = "held"  # reached the function before the opening: not published
    REFUSED = "refused"  # after the close and its grace: never published


@dataclass(frozen=True)
class SignRequest:
    """Ingest → sign: a validated, staged snapshot waiting for its place in the chain."""

    election: str
    snapshot_id: str
    draft_key: str
    package_sha256: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SignRequest:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__})


class DeliveryScope(StrEnum):
    DELTA = "delta"  # copy what changed since what the difusor publishes
    FULL = "full"  # copy everything and remove anything else (reinstatement)
    REPAIR = "repair"  # copy again the named files (an integrity incident)


@dataclass(frozen=True)
class DeliveryRequest:
    """Sign → replicate: deliver this signed snapshot to this difusor."""

    election: str
    difusor_id: str
    snapshot_id: str
    sequence: int
    manifest_key: str
    manifest_sha256: str
    cut_time: str
    # Why this delivery exists: "accepted", "release:<timer execution>", ... The same
    # snapshot may be delivered again for a new reason; never twice for the same one.
    reason: str = "accepted"
    scope: DeliveryScope = DeliveryScope.DELTA
    paths: tuple[str, ...] = ()  # the files a repair copies again

    @property
    def is_redelivery(self) -> bool:
        """A full or repair delivery may rewrite the sequence the difusor already has."""
        return self.scope is not DeliveryScope.DELTA

    @classmethod
    def for_head(
        cls,
        election: str,
        difusor_id: str,
        head: Head,
        reason: str = "accepted",
        scope: DeliveryScope = DeliveryScope.DELTA,
        paths: tuple[str, ...] = (),
    ) -> DeliveryRequest:
        """Deliver the snapshot at ``head`` to ``difusor_id``."""
        return cls(
            election=election,
            difusor_id=difusor_id,
            snapshot_id=head.snapshot_id,
            sequence=head.sequence,
            manifest_key=head.manifest_key,
            manifest_sha256=head.manifest_sha256,
            cut_time=head.cut_time,
            reason=reason,
            scope=scope,
            paths=paths,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["scope"] = str(self.scope)
        data["paths"] = list(self.paths)
        return data

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> DeliveryRequest:
        values = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        values["sequence"] = int(values["sequence"])
        values["scope"] = DeliveryScope(values.get("scope", DeliveryScope.DELTA))
        values["paths"] = tuple(values.get("paths", ()))
        return cls(**values)


@dataclass(frozen=True)
class Head:
    """The newest accepted snapshot of an election: where the chain continues."""

    sequence: int
    snapshot_id: str
    cut_time: str
    manifest_key: str
    manifest_sha256: str
    package_sha256: str


@dataclass(frozen=True)
class PublishedState:
    """What a difusor publishes now, as far as the ledger knows."""

    sequence: int
    snapshot_id: str
    manifest_key: str
    manifest_sha256: str
    lease: DeliveryLease | None = None  # a delivery in progress to the difusor


@dataclass(frozen=True)
class DeliveryLease:
    """The lease one delivery holds on a difusor while it copies (epoch seconds)."""

    owner: str  # snapshot_id#reason: every attempt of one delivery
    sequence: int
    until: int


@dataclass
class DeliveryOutcome:
    """The result of one delivery attempt, returned by the replicate logic."""

    difusor_id: str
    snapshot_id: str
    status: DeliveryStatus
    objects_copied: int = 0
    objects_deleted: int = 0
    bytes_copied: int = 0
    site_version: int | None = None  # the version the switch made live (docs/serving.md)
    slot: str = ""
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        return data
