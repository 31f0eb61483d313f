"""Verification for everyone, against the embedded default's real web targets: the
`difusion verify` command and the verification page in headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from difusion.cli import main
from difusion.generator import Snapshot
from difusion.local import browser
from difusion.publication import (
    MANIFEST_PATH,
    SIGNATURE_PATH,
    VERIFY_PAGE_PATH,
    history_path,
    history_signature_path,
)
from difusion.verification import _integrity_codes

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "out" / "browser"


@pytest.fixture
def published(pipeline, packages, tmp_path):
    """Three cuts delivered; the institute's key where a citizen would save it."""
    for package in packages:
        assert pipeline.process(package)["status"] == "accepted"
    key = tmp_path / "prep.pub"
    key.write_text(pipeline.secret_key.public_key.to_file())
    return pipeline, key


def verify(target: str, key: Path, *extra: str, capsys) -> tuple[int, dict]:
    capsys.readouterr()  # what the pipeline printed before
    code = main(["verify", target, "--public-key", str(key), "--json", *extra])
    out = capsys.readouterr().out
    # A function finishing meanwhile in this process prints its metrics (EMF, one line each,
    # as on Lambda) to the same stdout: they are not the command's output.
    return code, json.loads(
        "".join(line for line in out.splitlines(True) if not line.startswith('{"_aws"'))
    )


def put(pipeline, difusor_id: str, path: str, body: bytes) -> None:
    pipeline.tamper(difusor_id, path, body)


def test_a_site_a_bucket_and_a_download_verify_with_their_whole_history(
    published, tmp_path, capsys
):
    pipeline, key = published
    site = pipeline.sites["uabcs"].url
    code, url_result = verify(site, key, "--history", capsys=capsys)
    assert code == 0, url_result
    assert url_result["sequence"] == 3 and url_result["history_checked"] == 3
    assert url_result["actas_checked"] > 10
    # the bucket's live slot (the site serves its third version from slot a: a, b, a)
    bucket = pipeline.difusor("uabcs").bucket
    slot = pipeline.served_prefix("uabcs")
    third = pipeline.versions_made("uabcs")[2]
    assert slot == "_v/a/" and url_result["source"].endswith(f"(site version {third})")
    code, bucket_result = verify(f"s3://{bucket}/{slot}", key, "--history", capsys=capsys)
    assert code == 0 and bucket_result["extra"] == []
    pipeline.download_site("uabcs", tmp_path / "copy")
    code, copy_result = verify(str(tmp_path / "copy"), key, capsys=capsys)
    assert code == 0
    assert url_result["manifest_sha256"] == bucket_result["manifest_sha256"]
    assert copy_result["manifest_sha256"] == url_result["manifest_sha256"]
    # The key string works as well as the key file, and a person gets one plain line
    key_string = key.read_text().splitlines()[-1]
    assert main(["verify", site, "--public-key", key_string, "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("verified: ")


def test_each_way_a_copy_can_differ_gets_its_exit_code_and_the_path(published, tmp_path, capsys):
    pipeline, key = published
    objects = pipeline.site_objects("uabcs")
    site = pipeline.sites["uabcs"].url
    victim = next(p for p in objects if p.startswith("assets/JSON/"))
    # One byte altered
    put(pipeline, "uabcs", victim, bytes([objects[victim][0] ^ 1]) + objects[victim][1:])
    code, result = verify(site, key, capsys=capsys)
    assert code == 12 and result["altered"] == [victim]
    put(pipeline, "uabcs", victim, objects[victim])
    # One file removed
    pipeline.tamper("uabcs", "index.html", None)
    code, result = verify(site, key, capsys=capsys)
    assert code == 12 and result["missing"] == ["index.html"]
    put(pipeline, "uabcs", "index.html", objects["index.html"])
    # A swapped signature (an older snapshot's, with the current manifest)
    put(pipeline, "uabcs", SIGNATURE_PATH, objects[history_signature_path(1)])
    code, result = verify(site, key, capsys=capsys)
    assert code == 11 and result["signature_error"]
    # An older manifest replayed with its own valid signature
    put(pipeline, "uabcs", MANIFEST_PATH, objects[history_path(2)])
    put(pipeline, "uabcs", SIGNATURE_PATH, objects[history_signature_path(2)])
    code, result = verify(site, key, capsys=capsys)
    assert code == 14 and "stale" in result["history_error"]
    # ...and, had its history been rolled back too, against a manifest seen earlier
    pipeline.tamper("uabcs", history_path(3), None)
    seen = tmp_path / "seen-manifest.json"  # saved by a citizen at the latest cut
    seen.write_bytes(objects[MANIFEST_PATH])
    code, result = verify(site, key, "--since", str(seen), capsys=capsys)
    assert code == 14 and "rollback" in result["history_error"]
    # A site that does not answer
    pipeline.sites["uabcs"].take_down()
    code, result = verify(site, key, capsys=capsys)
    assert code == 10 and result["unreachable"]


def test_a_package_whose_codigo_integridad_is_wrong_is_never_signed_and_sites_keep_verifying(
    pipeline, series, packages, tmp_path, capsys
):
    # Given published cuts, then a cut whose database gives one acta a wrong CODIGO_INTEGRIDAD
    for package in packages[:2]:
        assert pipeline.process(package)["status"] == "accepted"
    snapshot = series[-1]
    csv_path = next(p for p in snapshot.files if p.startswith("assets/csv/"))
    clave, code = _integrity_codes(snapshot.files[csv_path])[0]
    wrong = Snapshot(cut_time=snapshot.cut_time, election_code=snapshot.election_code)
    wrong.files.update(
        {**snapshot.files, csv_path: snapshot.files[csv_path].replace(code.encode(), b"f" * 64)}
    )
    # Then ingest refuses it, naming the acta (every verifier would have shown NO COINCIDE)...
    record = pipeline.process(wrong.write_package(tmp_path))
    assert record["rejection_code"] == "acta_integrity" and clave in record["rejection_reason"]
    # ...and the difusores' copies still verify, data check included, at the cut before
    key = tmp_path / "prep.pub"
    key.write_text(pipeline.secret_key.public_key.to_file())
    exit_code, result = verify(pipeline.sites["diario-peninsular"].url, key, capsys=capsys)
    assert exit_code == 0 and result["actas_checked"] > 0
    assert result["snapshot_id"] == packages[1].name.removesuffix(".zip")
    # (a signed copy whose data contradicts itself still fails with 13: test_verification)


# --- in the browser ------------------------------------------------------------------------


def open_page(chromium: str, url: str, name: str, profile: Path) -> tuple[str, str]:
    """Open ``url`` in headless Chromium, let its scripts finish, and return the verdict
    element's state and the page; a screenshot is kept under out/browser/."""
    page = browser.open_page(url, profile, SCREENSHOTS / name)
    assert page.state, page.dom[-2000:]
    return page.state, page.dom


def test_the_page_in_chromium_gives_the_same_verdicts(published, chromium, tmp_path):
    pipeline, _ = published
    objects = pipeline.site_objects("canal-10-los-cabos")
    page = pipeline.sites["canal-10-los-cabos"].url + "/" + VERIFY_PAGE_PATH
    # A faithful site: verified, with the key's fingerprint to compare
    state, dom = open_page(chromium, page, "verificado.png", tmp_path / "a")
    assert state == "verificado", dom[-1500:]
    assert pipeline.secret_key.public_key.fingerprint in dom
    # One altered file: not verified, and the file is named
    victim = next(p for p in objects if p.startswith("assets/JSON/"))
    put(pipeline, "canal-10-los-cabos", victim, objects[victim] + b" ")
    state, dom = open_page(chromium, page, "archivo-alterado.png", tmp_path / "b")
    assert state == "fallido" and 'data-problema="alterado"' in dom
    assert re.search(r'<section id="alterados">.*' + re.escape(victim), dom, re.S)
    put(pipeline, "canal-10-los-cabos", victim, objects[victim])
    # A swapped signature: the signature does not verify
    put(pipeline, "canal-10-los-cabos", SIGNATURE_PATH, objects[history_signature_path(2)])
    state, dom = open_page(chromium, page, "firma-cambiada.png", tmp_path / "c")
    assert state == "fallido" and 'data-problema="firma"' in dom
    # A manifest from an older snapshot, with its own signature: stale
    put(pipeline, "canal-10-los-cabos", MANIFEST_PATH, objects[history_path(2)])
    state, dom = open_page(chromium, page, "manifiesto-anterior.png", tmp_path / "d")
    assert state == "fallido" and 'data-problema="desactualizado"' in dom
    assert all((SCREENSHOTS / n).stat().st_size > 5000 for n in ("verificado.png",))
