"""What the services need from the world, as small protocols.

The adapters (``difusion.adapters``) implement them against AWS; the tests' in-memory
fakes (``tests/fakes.py``) implement them in a few lines each, so the services' decisions
can be tested row by row without an emulator — and a contract test holds each fake to the
adapter's behaviour on the emulator. A service asks for the narrowest protocol that covers
what it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from difusion.models import (
    DeliveryLease,
    DeliveryOutcome,
    DeliveryRequest,
    DeliveryStatus,
    Difusor,
    PublishedState,
)
from difusion.records import DeliveryRecord
from difusion.versions import Pointer, StoredPointer
from difusion.window import WindowRecord


class WindowLedger(Protocol):
    """The publication window's state, as the timer (or an early close) left it."""

    def window(self) -> WindowRecord: ...


class DeliveryLedger(WindowLedger, Protocol):
    """What replicate records: the lease, the delivery, what a difusor publishes."""

    def published(self, difusor_id: str) -> PublishedState | None: ...

    def delivery_lease(self, difusor_id: str) -> DeliveryLease | None: ...

    def claim(self, request: DeliveryRequest, lease_seconds: int, now: datetime) -> None: ...

    def renew_lease(self, request: DeliveryRequest, lease_seconds: int, now: datetime) -> bool: ...

    def start_delivery(self, request: DeliveryRequest, attempt: int, at: datetime) -> None: ...

    def finish_delivery(
        self, request: DeliveryRequest, outcome: DeliveryOutcome, at: datetime
    ) -> None: ...

    def record_delivery_status(
        self, request: DeliveryRequest, status: DeliveryStatus, detail: str, at: datetime
    ) -> None: ...

    def record_delivery_failure(
        self, request: DeliveryRequest, attempt: int, error: str, final: bool, at: datetime
    ) -> None: ...

    def accepted_manifests(self) -> dict[int, str]: ...


class DeliveryHistory(Protocol):
    """Every delivery as recorded, typed: what the closing record and the operator's
    ``ledger`` command read (the contract test holds the fake's records to the ledger's)."""

    def delivery_records(self) -> list[DeliveryRecord]: ...


class SignedObjects(Protocol):
    """The origin as replicate reads it: signed manifests, signatures, the key."""

    bucket: str

    def get_bytes(self, key: str) -> bytes: ...


class Registry(Protocol):
    """The registered difusores."""

    def get(self, difusor_id: str) -> Difusor: ...

    def all(self) -> list[Difusor]: ...

    def active(self) -> list[Difusor]: ...


class PointerStore(Protocol):
    """A difusor's version pointer, read with its ETag and written with a compare-and-set
    (``difusion.adapters.pointer_store``)."""

    def read(self) -> StoredPointer: ...

    def write(self, pointer: Pointer, if_match: str) -> str: ...


class Site(Protocol):
    """One difusor's bucket and its version pointer, as the institute writes to them."""

    @property
    def pointer(self) -> PointerStore: ...

    def copy_in(
        self,
        *,
        source_bucket: str,
        source_key: str,
        key: str,
        content_type: str,
        sha256: str,
        size: int,
    ) -> None: ...

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None: ...

    def list_keys(self, prefix: str = "") -> list[str]: ...

    def delete(self, keys: Sequence[str]) -> int: ...


class Sites(Protocol):
    def open(self, difusor: Difusor) -> Site: ...


class DeliverySender(Protocol):
    """Sends deliveries to the replicate step (one message group per difusor)."""

    def send(self, requests: Sequence[DeliveryRequest]) -> None: ...
