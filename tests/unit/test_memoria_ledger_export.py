"""A difusor's ledger export: what it keeps, and files it refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from difusion.memoria.ledger_export import LedgerExportError, history_of, read_history
from difusion.records import CheckRecord, DeliveryRecord, IncidentRecord


def _history():
    return history_of(
        "uabcs",
        "DIP_LOC_BCS",
        datetime(2024, 6, 21, tzinfo=UTC),
        [
            DeliveryRecord("S2", "uabcs", sequence=2, started_at="2024-06-03T03:20:00+00:00"),
            DeliveryRecord("S1", "uabcs", sequence=1, started_at="2024-06-03T03:05:00+00:00"),
            DeliveryRecord("S1", "otro", sequence=1, started_at="2024-06-03T03:05:00+00:00"),
        ],
        [CheckRecord("uabcs", period="p2", outcome="ok"), CheckRecord("otro", period="p1")],
        [
            IncidentRecord("i1", "uabcs", "integrity", actions=("redelivery",)),
            IncidentRecord("i2", "otro", "unreachable"),
        ],
        [IncidentRecord("u1", None, "upstream")],
    )


def test_only_the_difusors_records_in_time_order_and_they_read_back_the_same(tmp_path: Path):
    history = _history()
    assert [d.snapshot_id for d in history.deliveries] == ["S1", "S2"]
    assert [c.period for c in history.checks] == ["p2"]
    assert [i.incident_id for i in history.incidents] == ["i1"]
    assert [i.incident_id for i in history.upstream_incidents] == ["u1"]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(history.to_json()), encoding="utf-8")
    assert read_history(path, "uabcs") == history


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("no es json", "not a readable ledger export"),
        ('{"format": "otra-cosa/1"}', "not a ledger export"),
        ('{"format": "difusion-ledger-export/1", "difusor_id": "uabcs"}', "incomplete"),
    ],
)
def test_a_file_that_is_not_an_export_is_refused_with_the_reason(
    tmp_path: Path, content: str, message: str
):
    path = tmp_path / "export.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(LedgerExportError, match=message):
        read_history(path)
