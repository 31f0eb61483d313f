"""One scenario of the delivery ledger's rules, run against the real ledger (on the
emulator) and against ``tests.fakes.FakeDeliveryLedger``: the fake decides as the real one,
and its typed delivery records end the same, field by field."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest

from difusion.adapters.ledger import AlreadyPublished, DifusorBusy
from difusion.models import DeliveryOutcome, DeliveryRequest, DeliveryScope, DeliveryStatus
from difusion.ports import DeliveryHistory, DeliveryLedger
from difusion.records import DeliveryRecord

T0 = datetime(2027, 6, 7, 3, 0, tzinfo=UTC)


class RecordingLedger(DeliveryLedger, DeliveryHistory, Protocol):
    """What the scenario runs on: replicate's ledger, and the records it leaves."""


def at(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def request(sequence: int, **changes: object) -> DeliveryRequest:
    base = DeliveryRequest(
        election="E",
        difusor_id="d1",
        snapshot_id=f"S{sequence}",
        sequence=sequence,
        manifest_key=f"manifests/{sequence:06d}_S{sequence}.json",
        manifest_sha256=f"{sequence:064x}",
        cut_time="2027-06-06T20:00:00-07:00",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def record_of(r: DeliveryRequest, **fields: Any) -> DeliveryRecord:
    """The record of ``r``'s delivery, with ``fields``."""
    return DeliveryRecord(r.snapshot_id, r.difusor_id, r.sequence, r.reason, str(r.scope), **fields)


def delivered(r: DeliveryRequest) -> DeliveryOutcome:
    return DeliveryOutcome(
        r.difusor_id, r.snapshot_id, DeliveryStatus.DELIVERED, 3, 0, 9, site_version=4, slot="b"
    )


def exercise_delivery_ledger(ledger: RecordingLedger, status_of) -> None:
    """``status_of(request)`` reads the delivery record's status from ``ledger``'s store."""
    first, second, third = request(1), request(2), request(3)
    assert ledger.published("d1") is None
    # a lease belongs to its delivery: its retry takes it over, another waits
    ledger.claim(first, 60, T0)
    ledger.claim(first, 60, T0 + timedelta(seconds=1))
    with pytest.raises(DifusorBusy) as busy:
        ledger.claim(second, 60, T0 + timedelta(seconds=2))
    assert 55 <= busy.value.seconds <= 61
    # a finished delivery moves the sequence forward and frees the lease
    ledger.start_delivery(first, 1, T0)
    ledger.finish_delivery(first, delivered(first), T0 + timedelta(seconds=3))
    state = ledger.published("d1")
    assert state is not None and state.sequence == 1 and state.lease is None
    assert status_of(first) == "delivered"
    # the same delivery again, or an older one, is already published
    with pytest.raises(AlreadyPublished):
        ledger.claim(first, 60, T0 + timedelta(seconds=4))
    with pytest.raises(AlreadyPublished):
        ledger.finish_delivery(first, delivered(first), T0 + timedelta(seconds=4))
    # a duplicate that took the lease before the finish does not start it again
    with pytest.raises(AlreadyPublished):
        ledger.start_delivery(first, 2, T0 + timedelta(seconds=4))
    # a late failure of a duplicate never rewrites a delivered record
    ledger.record_delivery_failure(first, 2, "late", True, T0 + timedelta(seconds=5))
    ledger.record_delivery_status(first, DeliveryStatus.SUPERSEDED, "x", T0)
    assert status_of(first) == "delivered"
    # a failure releases only the lease its delivery holds
    ledger.claim(second, 60, T0 + timedelta(seconds=6))
    ledger.record_delivery_failure(third, 1, "not mine", False, T0 + timedelta(seconds=7))
    lease = ledger.delivery_lease("d1")
    assert lease is not None and lease.owner == "S2#accepted"
    ledger.record_delivery_failure(second, 1, "mine", False, T0 + timedelta(seconds=8))
    assert ledger.delivery_lease("d1") is None and status_of(second) == "retrying"
    # an expired lease is anyone's
    ledger.claim(second, 60, T0 + timedelta(seconds=9))
    ledger.claim(third, 60, T0 + timedelta(seconds=71))
    # a repair may rewrite the sequence the difusor has; a delta may not
    ledger.finish_delivery(third, delivered(third), T0 + timedelta(seconds=72))
    repair = request(3, reason="repair:p1", scope=DeliveryScope.REPAIR)
    ledger.claim(repair, 60, T0 + timedelta(seconds=73))
    ledger.finish_delivery(repair, delivered(repair), T0 + timedelta(seconds=74))
    assert status_of(repair) == "delivered" and ledger.published("d1").sequence == 3
    # What the scenario leaves in the records: a delivered one keeps when its failed attempt
    # failed but not its error; a redelivery has its own record; refused writes left none.
    done = {
        "status": "delivered",
        "objects_copied": 3,
        "objects_deleted": 0,
        "bytes_copied": 9,
        "site_version": 4,
        "slot": "b",
    }
    assert ledger.delivery_records() == [
        record_of(
            first, attempts=1, started_at=at(0), attempt_started_at=at(0), finished_at=at(3), **done
        ),
        record_of(second, status="retrying", attempts=1, failed_at=at(8), last_error="mine"),
        record_of(third, attempts=1, failed_at=at(7), finished_at=at(72), **done),
        record_of(repair, finished_at=at(74), **done),
    ]
