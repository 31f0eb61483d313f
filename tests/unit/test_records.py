"""The ledger's records read from its items: what the writers stored, typed, and nothing
made up for what they did not store."""

from __future__ import annotations

from dataclasses import fields
from decimal import Decimal

import pytest

from difusion.adapters.ledger.table import plain
from difusion.records import (
    CheckRecord,
    DeliveryRecord,
    IncidentRecord,
    RejectionRecord,
    SnapshotRecord,
    all_rejections,
    as_item,
)
from tests import closing_night as night

RECORD_TYPES = [SnapshotRecord, RejectionRecord, DeliveryRecord, CheckRecord, IncidentRecord]


@pytest.mark.parametrize("record_type", RECORD_TYPES, ids=lambda t: t.__name__)
def test_an_item_with_none_of_its_fields_reads_as_an_empty_record(record_type):
    # Given an item with its keys only (say, a record a later step would have completed)
    item = {"pk": "ELECTION#E", "sk": "X#1", "kind": "whatever"}
    # When it is read
    record = record_type.from_item(item)
    # Then its identity is empty and every other field absent: None, or no items in a list
    for field in fields(record):
        value = getattr(record, field.name)
        if field.name in ("snapshot_id", "difusor_id") and field.type == "str":
            assert value == ""
        else:
            assert value in (None, ()), field.name


@pytest.mark.parametrize("record_type", RECORD_TYPES, ids=lambda t: t.__name__)
def test_attributes_the_record_does_not_know_are_left_out(record_type):
    record = record_type.from_item({"snapshot_id": "s", "noted": {"p1"}, "x": 1})
    assert not hasattr(record, "noted") and not hasattr(record, "x")


def test_a_snapshots_numbers_come_as_ints_whether_boto3_or_plain():
    # Given the withdrawn snapshot #1 as boto3 returns it (numbers as Decimal)
    raw = night.SNAPSHOTS[0]
    assert isinstance(raw["sequence"], Decimal)
    # When it is read, raw or made plain
    record = SnapshotRecord.from_item(raw)
    # Then its numbers are ints, the same either way
    assert record == SnapshotRecord.from_item(plain(raw))
    assert (record.sequence, record.file_count, record.package_size) == (1, 41, 1001)
    assert type(record.sequence) is int and type(record.withdrawn_by_sequence) is int
    assert record.withdrawn_by_sequence == 4
    assert record.withdrawal_reason == "paquete con actas duplicadas"
    assert record.accepted and record.rejection is None
    assert record.withdraws is None and record.withdrawal_gave_up is None


def test_a_withdrawal_entry_names_what_it_withdrew_and_what_it_restores():
    entry = SnapshotRecord.from_item(night.SNAPSHOTS[-1])
    assert entry.withdraws == night.S1 and entry.withdraws_sequence == 1
    assert entry.restores_sequence == 2
    # it has no package of its own: no package fields, not an empty string
    assert entry.package_sha256 is None and entry.object_key is None
    assert entry.file_count == 42


def test_a_rejected_snapshot_reads_as_its_rejection_and_a_refused_reupload_as_its_own():
    rejected = SnapshotRecord.from_item(night.SNAPSHOTS[3])
    assert rejected.sequence is None and rejected.cut_time is None
    assert rejected.rejection == RejectionRecord(
        snapshot_id=night.BAD,
        status="rejected",
        object_key=f"incoming/{night.BAD}.zip",
        rejection_code="not_an_archive",
        rejection_reason="the package is not a zip archive",
        rejected_at=night.at(121),
    )
    [reupload] = [RejectionRecord.from_item(item) for item in night.REUPLOADS]
    assert reupload.snapshot_id == night.S2 and reupload.rejection_code == "already_accepted"
    snapshots = [SnapshotRecord.from_item(item) for item in night.SNAPSHOTS]
    assert [r.snapshot_id for r in all_rejections(snapshots, [reupload])] == [night.BAD, night.S2]


def test_a_withdrawal_that_gave_up_says_so():
    record = SnapshotRecord.from_item(
        {
            **night.SNAPSHOTS[1],
            "withdrawal_error": "AccessDenied",
            "withdrawal_failed_at": night.at(10),
            "withdrawal_gave_up": True,
        }
    )
    assert record.withdrawal_gave_up is True and record.withdrawal_error == "AccessDenied"
    assert record.withdrawn_at is None


def test_a_delivery_keeps_an_empty_detail_apart_from_a_missing_one():
    skipped, superseded, early = (DeliveryRecord.from_item(night.DELIVERIES[i]) for i in (5, 6, 8))
    assert skipped.detail == "difusor suspended" and skipped.last_error is None
    assert superseded.detail == ""
    # an early record: no reason, scope or sequence (the closing record says accepted, delta)
    assert (early.reason, early.delivery_scope, early.sequence) == (None, None, None)
    assert early.detail == "" and early.last_error == "timeout"


def test_a_delivery_reads_its_counts_and_times():
    record = DeliveryRecord.from_item(night.DELIVERIES[2])
    assert (record.snapshot_id, record.difusor_id, record.sequence) == (night.S2, "uabcs", 2)
    assert (record.objects_copied, record.objects_deleted, record.bytes_copied) == (12, 0, 12000)
    assert record.attempts == 2 and record.attempt_started_at == night.at(83)
    assert record.delivered and (record.site_version, record.slot) == (12, "a")


def test_a_check_reads_its_outcome_and_a_site_that_served_nothing():
    unreachable = CheckRecord.from_item(night.CHECKS[2])
    assert unreachable.outcome == "unreachable" and unreachable.served_sequence is None
    assert unreachable.altered_paths == () and unreachable.files_checked == 32
    altered = CheckRecord.from_item(night.CHECKS[5])
    assert altered.altered_paths == ("index.html",) and altered.served_sequence == 2
    assert CheckRecord.from_item(night.CHECKS[6]).outcome is None
    pending = CheckRecord.from_item({**night.CHECKS[0], "actions_pending": ["alert"]})
    assert pending.actions_pending == ("alert",)


def test_an_incident_reads_its_lists_and_leaves_out_the_monitors_bookkeeping():
    incident = IncidentRecord.from_item(night.INCIDENTS[0])
    assert incident.periods_failed == 3 and type(incident.periods_failed) is int
    assert incident.causes == ("unreachable", "timeout")
    assert incident.ended_at is None and incident.resolution is None
    assert "noted" not in as_item(incident)
    bare = IncidentRecord.from_item(night.INCIDENTS[2])
    assert bare.causes == () and bare.actions == () and bare.periods_failed is None
    upstream = IncidentRecord.from_item(night.UPSTREAM_INCIDENTS[0])
    assert upstream.difusor_id == "@upstream" and upstream.resolution == "a new snapshot arrived"


@pytest.mark.parametrize(
    ("record_type", "items"),
    [
        (SnapshotRecord, night.SNAPSHOTS),
        (RejectionRecord, night.REUPLOADS),
        (DeliveryRecord, night.DELIVERIES),
        (CheckRecord, night.CHECKS),
        (IncidentRecord, night.INCIDENTS + night.UPSTREAM_INCIDENTS),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_a_record_as_an_item_is_what_was_stored_and_reads_back_the_same(record_type, items):
    names = {field.name for field in fields(record_type)}
    for item in items:
        record = record_type.from_item(item)
        assert record_type.from_item(as_item(record)) == record
        # what the item stored of the record's fields, as plain values (the CLI's JSON);
        # a list it lacked shows as an empty one
        stored = {k: v for k, v in plain(item).items() if k in names and v is not None}
        shown = as_item(record)
        assert {k: v for k, v in shown.items() if k in stored or v != []} == stored


def test_a_delivery_sent_again_lists_its_periods_in_order_from_dynamodbs_set():
    item = {
        "snapshot_id": "S",
        "difusor_id": "uabcs",
        "status": "delivered",
        "catch_up_periods": {"2024-06-03T04:30:00+00:00", "2024-06-03T04:15:00+00:00"},
        "last_catch_up_why": "publishes #4, the head #5 was sent 20 min ago",
    }
    record = DeliveryRecord.from_item(item)
    assert record.catch_up_periods == ("2024-06-03T04:15:00+00:00", "2024-06-03T04:30:00+00:00")
    assert record.last_catch_up_why.startswith("publishes #4")
    assert as_item(record)["catch_up_periods"] == list(record.catch_up_periods)
