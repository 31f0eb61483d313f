"""`difusion local run` and `difusion demo`, as an operator runs them, in a subprocess."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from difusion.generator import SeriesSpec, generate_series
from difusion.manifest import Manifest
from difusion.publication import MANIFEST_PATH, SIGNATURE_PATH
from tests.builders import zip_bytes
from tests.minisign_tool import minisign_verify

pytestmark = pytest.mark.e2e
CLI = [sys.executable, "-m", "difusion.cli"]


def test_local_run_reports_each_package_and_what_each_difusor_publishes(tmp_path):
    # Given two good cuts, a traversal attempt, a duplicate upload and a late, older cut
    series = generate_series(SeriesSpec.small(cuts=2))
    good = [s.write_package(tmp_path) for s in series]
    evil = tmp_path / "20240602_2030_PREP_DIP_LOC_BCS.zip"
    evil.write_bytes(zip_bytes({"../../etc/passwd": b"root"}))
    # When they run through the embedded default in this order
    result = subprocess.run(
        [
            *CLI,
            "local",
            "run",
            str(good[0]),
            str(evil),
            str(good[1]),
            str(good[1]),
            str(good[0]),
            "--json",
            "--work-dir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # Then the exit code says not everything was accepted, and the JSON says what happened
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    statuses = [(p["package"], p["status"], p["code"]) for p in report["packages"]]
    assert statuses == [
        (good[0].name, "accepted", None),
        (evil.name, "rejected", "unsafe_path"),
        (good[1].name, "accepted", None),
        (good[1].name, "accepted", None),  # the same package again: a duplicate, no change
        (good[0].name, "rejected", "stale"),  # an older cut uploaded late
    ]
    assert report["packages"][1]["reason"]
    assert len(report["difusores"]) == 3
    for difusor in report["difusores"]:
        assert difusor["snapshot_id"] == series[1].snapshot_id
        assert difusor["sequence"] == 2
    assert len({d["account_id"] for d in report["difusores"]}) == 3
    assert (tmp_path / "work" / "logs.jsonl").stat().st_size > 0


def test_local_run_names_a_missing_package(tmp_path):
    result = subprocess.run(
        [*CLI, "local", "run", str(tmp_path / "nope.zip")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "no such package" in result.stderr


def test_the_demo_plays_a_whole_night_and_leaves_verifiable_sites_and_the_record(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [*CLI, "demo", "--out", str(out), "--casillas", "60", "--cuts", "4"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Deliveries" in result.stdout and "verified" in result.stdout
    report = json.loads((out / "report.json").read_text())
    first, second, third, late = (p["snapshot_id"] for p in report["packages"])
    # The first cut arrived before the opening: signed, held, then released at the opening,
    # to the second (the night runs on a controlled clock, whatever the machine's load)
    snapshots = {s["snapshot_id"]: s for s in report["snapshots"]}
    assert snapshots[first]["held_at"] < report["window"]["opened_at"]
    assert report["window"]["opened_at"] == report["window"]["opening"]
    released = [d for d in report["deliveries"] if d["snapshot_id"] == first]
    assert {d["reason"].split(":")[0] for d in released} == {"release"}
    assert len(released) == 3
    assert {d["started_at"] for d in released} == {report["window"]["opening"]}
    # Nothing was published before the opening or after the close and its grace
    assert report["publication_times"]["outside_window"] == 0
    opening = report["window"]["opening"]
    for delivery in report["deliveries"]:
        if delivery["status"] == "delivered":
            assert delivery["started_at"] >= opening
            assert delivery["finished_at"] <= report["window"]["closed_at"]
    # One site went down and was suspended after three failed periods, with the notice
    difusores = {d["difusor_id"]: d for d in report["difusores"]}
    assert difusores["canal-10-los-cabos"]["status"] == "suspended"
    [incident] = report["incidents"]
    assert incident["periods_failed"] == 3 and incident["cause"] == "unreachable"
    notice = (out / "sites" / "canal-10-los-cabos" / "index.html").read_text()
    assert "fue interrumpida" in notice
    listing = json.loads((out / "difusores.json").read_text())
    assert {d["difusor"]: d["estado"] for d in listing["difusores"]}["canal-10-los-cabos"] == (
        "suspendido"
    )
    # the board's last word on each site, beside the last cut the institute signed
    last = {d["difusor"]: d["ultima_revision"] for d in listing["difusores"]}
    assert last["canal-10-los-cabos"]["resultado"] == "inaccesible"
    assert last["uabcs"]["resultado"] == "verificado"
    assert listing["instituto"]["corte"] == report["closing_record"]["final_snapshot_id"]
    # and the institute's verifier, with the key pinned in it
    key = (out / "keys" / "prep.pub").read_text().splitlines()[-1]
    assert key in (out / "verificador.html").read_text()
    # Each difusor has its memoria técnica; the one whose site went down shows the incident
    # with the errors its logs had meanwhile, and the institute's deliveries to it
    memorias = {m["difusor_id"]: m for m in report["memorias"]}
    assert set(memorias) == set(difusores)
    for difusor_id in difusores:
        folder = out / "memoria" / difusor_id
        assert (folder / "memoria-tecnica.pdf").read_bytes().startswith(b"%PDF")
        assert "Memoria técnica" in (folder / "memoria-tecnica.html").read_text(encoding="utf-8")
        memoria = json.loads((folder / "memoria-tecnica.json").read_text(encoding="utf-8"))
        delivered = [d for d in report["deliveries"] if d["difusor_id"] == difusor_id]
        assert memoria["deliveries"]["count"] == len(delivered)
        assert memoria["key"]["hits"] > 0 and memoria["election_night"]["per_minute"]
    down = json.loads(
        (out / "memoria" / "canal-10-los-cabos" / "memoria-tecnica.json").read_text("utf-8")
    )
    [seen] = down["incidents"]
    assert seen["cause"] == "unreachable" and seen["error_spike"]
    assert "incidentes" in memorias["canal-10-los-cabos"]["criteria"]
    assert memorias["uabcs"]["incidents"] == 0
    # The late cut was refused, and the closing record names the final snapshot
    assert report["packages"][-1]["code"] == "window_closed"
    record = json.loads((out / "registro-de-cierre.json").read_text())
    assert record["final_snapshot"]["snapshot_id"] == third
    assert record["window"]["closed_early"] is True
    assert [s["snapshot_id"] for s in record["snapshots_published"]] == [first, second, third]
    assert late in {r["snapshot_id"] for r in record["rejections"]}
    assert "Registro de cierre" in (out / "registro-de-cierre.html").read_text()
    # Later cuts copy only changed files: fewer copies than files published
    final_files = snapshots[third]["file_count"]
    later = [d for d in report["deliveries"] if d["snapshot_id"] == third]
    assert all(d["objects_copied"] < final_files for d in later)
    for difusor in ("diario-peninsular", "uabcs"):
        site = out / "sites" / difusor
        # The stock minisign tool verifies the published manifest with the demo's key
        check = minisign_verify(
            site / MANIFEST_PATH, site / SIGNATURE_PATH, out / "keys" / "prep.pub"
        )
        assert check.returncode == 0, check.stderr
        # ...and every file matches its manifest hash
        manifest = Manifest.from_bytes((site / MANIFEST_PATH).read_bytes())
        assert manifest.snapshot_id == third
        for entry in manifest.files:
            assert hashlib.sha256((site / entry.path).read_bytes()).hexdigest() == entry.sha256
        published = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
        history = {
            f".well-known/prep/history/{n:06d}.json{suffix}"
            for n in (1, 2, 3)
            for suffix in ("", ".minisig")
        }
        assert published - {f.path for f in manifest.files} == {
            ".well-known/prep/manifest.json",
            ".well-known/prep/manifest.json.minisig",
            ".well-known/prep/prep.pub",
            *history,
        }
        # The CLI verifies the downloaded copy, its whole history and every acta
        verified = subprocess.run(
            [
                *CLI,
                "verify",
                str(site),
                "--public-key",
                str(out / "keys" / "prep.pub"),
                "--history",
                "--json",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert verified.returncode == 0, verified.stdout
        assert json.loads(verified.stdout)["history_checked"] == 3


def test_check_validates_packages_offline(tmp_path):
    good = generate_series(SeriesSpec.small(cuts=1))[0].write_package(tmp_path)
    bad = tmp_path / "20240602_2020_PREP_DIP_LOC_BCS.zip"
    bad.write_bytes(b"not a zip")
    result = subprocess.run(
        [*CLI, "check", str(good), str(bad), "--json"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 3
    verdicts = {r["package"]: r for r in json.loads(result.stdout)}
    assert verdicts[good.name]["status"] == "valid"
    assert verdicts[bad.name]["code"] == "not_an_archive"


def test_keys_create_writes_minisign_files_that_sign_and_verify(tmp_path):
    result = subprocess.run(
        [*CLI, "keys", "create", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "prep.key").stat().st_mode & 0o077 == 0  # private to its owner
    from difusion.signing import PublicKey, SecretKey

    secret = SecretKey.from_file((tmp_path / "prep.key").read_text())
    assert secret.public_key == PublicKey.from_text((tmp_path / "prep.pub").read_text())
    again = subprocess.run(
        [*CLI, "keys", "create", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 2 and "exists" in again.stderr
