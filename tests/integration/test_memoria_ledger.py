"""`difusion ledger export`: a difusor's part of the ledger, for its memoria técnica."""

from __future__ import annotations

import json

import pytest

from difusion.cli import main
from difusion.manifest import Manifest
from difusion.memoria.ledger_export import LedgerExportError, read_history
from difusion.publication import MANIFEST_PATH

pytestmark = pytest.mark.integration


def test_the_export_holds_the_difusors_deliveries_checks_and_incidents_only(
    pipeline, packages, tmp_path, capsys
):
    # Given a night in which one difusor's file was altered and repaired
    pipeline.process(packages[0])
    victim_id = "diario-peninsular"
    manifest = Manifest.from_bytes(pipeline.site_objects(victim_id)[MANIFEST_PATH])
    victim = next(f.path for f in manifest.files if f.path.endswith(".json"))
    pipeline.tamper(victim_id, victim, b'{"votos": 999999}')
    pipeline.run_monitor_period()
    pipeline.settle()
    pipeline.process(packages[1])
    pipeline.run_monitor_period()
    table, election = pipeline.deployment.ledger_table, pipeline.deployment.election
    out = tmp_path / "export" / f"{victim_id}.json"
    # When the institute exports that difusor's part
    args = ["ledger", "export", "--difusor", victim_id, "--table", table]
    assert main([*args, "--election", election, "--out", str(out)]) == 0
    assert "deliveries" in capsys.readouterr().out
    # Then the file holds its deliveries (both cuts and the repair), checks and incident
    history = read_history(out, victim_id)
    assert {d.difusor_id for d in history.deliveries} == {victim_id}
    assert sorted(d.delivery_scope or "" for d in history.deliveries).count("repair") == 1
    assert {d.snapshot_id for d in history.deliveries} == {
        p.name.removesuffix(".zip") for p in packages[:2]
    }
    assert [c.outcome for c in history.checks] == ["altered", "ok"]
    [incident] = history.incidents
    assert incident.incident_kind == "integrity" and incident.ended_at is not None
    assert incident.actions
    # and nothing of the other difusores
    raw = json.loads(out.read_text(encoding="utf-8"))
    assert "uabcs" not in json.dumps(raw["deliveries"]) + json.dumps(raw["checks"])
    # A difusor the ledger has nothing of is an error, not an empty file
    other = tmp_path / "nadie.json"
    assert main([*args[:3], "nadie", *args[4:], "--election", election, "--out", str(other)]) == 2
    assert "nothing of 'nadie'" in capsys.readouterr().err and not other.exists()
    # and another difusor's export is refused by name
    with pytest.raises(LedgerExportError, match="not of 'uabcs'"):
        read_history(out, "uabcs")
