"""`verify_site` on downloaded copies: every way a copy can differ from what was signed gets
its own verdict and names the path."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from difusion.adapters.site_sources import DirectorySource
from difusion.content_types import content_type_for
from difusion.generator import SeriesSpec, Snapshot, generate_series
from difusion.manifest import Manifest, ManifestFile, PackageInfo, Withdrawal
from difusion.publication import (
    MANIFEST_PATH,
    PUBLIC_KEY_PATH,
    SIGNATURE_PATH,
    history_path,
    history_signature_path,
)
from difusion.signing import SecretKey, sign
from difusion.verification import Verdict, _integrity_codes, verify_site

KEY = SecretKey.generate()
AT = datetime(2024, 6, 3, 4, 0, tzinfo=UTC)


def signed(files: dict[str, bytes], snapshot: Snapshot, sequence: int, previous: str | None):
    draft = Manifest.draft(
        election="DIP_LOC_BCS",
        snapshot_id=snapshot.snapshot_id,
        cut_time=snapshot.cut_time,
        package=PackageInfo(f"{snapshot.snapshot_id}.zip", "0" * 64, 1),
        files=[
            ManifestFile(p, hashlib.sha256(b).hexdigest(), len(b), content_type_for(p))
            for p, b in files.items()
        ],
    )
    manifest = draft.chained(sequence=sequence, previous_manifest_sha256=previous, created_at=AT)
    body = manifest.canonical_bytes()
    return manifest, body, sign(body, KEY, trusted_comment="t", untrusted_comment="u")


def publish(root: Path, series: list[Snapshot]) -> list[bytes]:
    """A copy of a site as replicate leaves it after every snapshot of ``series``."""
    previous = None
    bodies = []
    for sequence, snapshot in enumerate(series, start=1):
        manifest, body, signature = signed(snapshot.files, snapshot, sequence, previous)
        previous = manifest.sha256
        bodies.append(body)
        write(root, history_path(sequence), body)
        write(root, history_signature_path(sequence), signature.encode())
    for path, data in series[-1].files.items():
        write(root, path, data)
    write(root, MANIFEST_PATH, bodies[-1])
    write(root, SIGNATURE_PATH, (root / history_signature_path(len(series))).read_bytes())
    write(root, PUBLIC_KEY_PATH, KEY.public_key.to_file().encode())
    return bodies


def write(root: Path, path: str, data: bytes) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


@pytest.fixture(scope="module")
def series() -> list[Snapshot]:
    return generate_series(SeriesSpec.small(cuts=3))


@pytest.fixture
def site(tmp_path: Path, series) -> Path:
    publish(tmp_path, series)
    return tmp_path


def check(root: Path, **options):
    return verify_site(DirectorySource(root), KEY.public_key, **options)


def test_a_faithful_copy_verifies_with_its_history_and_every_acta(site, series):
    result = check(site, history=True)
    assert result.verdict is Verdict.VERIFIED, result.problems
    assert result.sequence == 3 and result.history_checked == 3
    assert result.actas_checked > 10


def test_one_byte_altered_one_file_removed_one_file_added(site, series):
    victim = next(p for p in series[-1].files if p.endswith(".json"))
    data = bytearray((site / victim).read_bytes())
    data[0] ^= 1
    (site / victim).write_bytes(bytes(data))
    assert check(site).altered == [victim]
    assert check(site).verdict is Verdict.FILES
    (site / "index.html").unlink()
    assert check(site).missing == ["index.html"]
    write(site, "extra/page.html", b"<html>")
    assert check(site).extra == ["extra/page.html"]


def test_a_swapped_signature_is_a_bad_signature(site):
    write(site, SIGNATURE_PATH, (site / history_signature_path(1)).read_bytes())
    result = check(site)
    assert result.verdict is Verdict.BAD_SIGNATURE and result.signature_error


def test_a_replayed_older_manifest_is_stale_by_the_sites_own_history(site):
    write(site, MANIFEST_PATH, (site / history_path(2)).read_bytes())
    write(site, SIGNATURE_PATH, (site / history_signature_path(2)).read_bytes())
    result = check(site)
    assert result.verdict is Verdict.HISTORY
    assert "stale" in result.history_error and "#3" in result.history_error


def test_since_detects_rollback_and_fork(site, series, tmp_path_factory):
    seen = Manifest.from_bytes((site / history_path(2)).read_bytes())
    assert check(site, since=seen).verdict is Verdict.VERIFIED
    # The site went back, and its history with it: a rollback against what was seen
    rolled = tmp_path_factory.mktemp("rolled")
    publish(rolled, series[:1])
    result = check(rolled, since=seen)
    assert result.verdict is Verdict.HISTORY and "rollback" in result.history_error
    # Another chain (same cuts, signed again with other timestamps): a fork
    forked = tmp_path_factory.mktemp("forked")
    other = [s for s in series]
    other[1] = generate_series(SeriesSpec.small(cuts=3, seed=99))[1]
    publish(forked, other)
    result = check(forked, since=seen)
    assert result.verdict is Verdict.HISTORY and "fork" in result.history_error


def test_a_gap_in_the_history_is_reported(site):
    (site / history_path(2)).unlink()
    result = check(site, history=True)
    assert result.verdict is Verdict.HISTORY and "#2 is missing" in result.history_error


def test_a_signed_csv_whose_codigo_integridad_does_not_match_its_image(tmp_path, series):
    # Given a package whose database names a wrong code for one acta: signed all the same
    snapshot = series[-1]
    csv_path = next(p for p in snapshot.files if p.startswith("assets/csv/"))
    clave, code = _integrity_codes(snapshot.files[csv_path])[0]
    tampered = snapshot.files[csv_path].replace(code.encode(), b"0" * 64, 1)
    broken = Snapshot(cut_time=snapshot.cut_time, election_code=snapshot.election_code)
    broken.files.update({**snapshot.files, csv_path: tampered})
    publish(tmp_path, [broken])
    # Then the signature and files verify, and the data check names the image
    result = check(tmp_path)
    assert result.verdict is Verdict.DATA
    [image] = result.integrity_mismatch
    assert image.endswith(f"/{clave}.png")


def test_an_image_the_database_names_must_be_published(tmp_path, series):
    snapshot = series[-1]
    image = next(p for p in snapshot.files if p.startswith("assets/actas/"))
    without = Snapshot(cut_time=snapshot.cut_time, election_code=snapshot.election_code)
    without.files.update({p: b for p, b in snapshot.files.items() if p != image})
    publish(tmp_path, [without])
    result = check(tmp_path)
    assert result.verdict is Verdict.DATA
    assert any(image.rsplit("/", 1)[-1].removesuffix(".png") in m for m in result.images_missing)


def test_the_database_header_is_found_after_the_summary_lines():
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Diputaciones"])
    writer.writerow(["02/06/2024 21:20"])
    writer.writerow(["ACTAS_ESPERADAS", "ACTAS_REGISTRADAS"])
    writer.writerow(["10", "2"])
    writer.writerow(["CLAVE_CASILLA", "CLAVE_ACTA", "SHA"])
    writer.writerow(["c1", "'0301", "ab" * 32])
    writer.writerow(["c2", "0302", ""])
    assert _integrity_codes(out.getvalue().encode("utf-8-sig")) == [("0301", "ab" * 32)]


def _withdrawal_site(root: Path, series, restores: int | None, files_of: int) -> Withdrawal:
    """Three cuts, then entry #4 withdrawing #3: restoring ``restores`` with the files of
    cut ``files_of`` (index into ``series``)."""
    bodies = publish(root, series)
    withdrawn = Manifest.from_bytes(bodies[2])
    withdrawal = Withdrawal(3, withdrawn.snapshot_id, withdrawn.sha256, "error", restores)
    source = series[files_of]
    manifest, _, _ = signed(source.files, source, 4, withdrawn.sha256)
    manifest = replace(manifest, snapshot_id="retiro-000004", withdrawal=withdrawal)
    body = manifest.canonical_bytes()
    signature = sign(body, KEY, trusted_comment="t", untrusted_comment="u")
    write(root, history_path(4), body)
    write(root, history_signature_path(4), signature.encode())
    write(root, MANIFEST_PATH, body)
    write(root, SIGNATURE_PATH, signature.encode())
    for path in series[2].files:
        (root / path).unlink(missing_ok=True)
    for path, data in source.files.items():
        write(root, path, data)
    return withdrawal


def test_a_signed_withdrawal_is_verified_and_reported(tmp_path, series):
    _withdrawal_site(tmp_path, series, restores=2, files_of=1)
    result = check(tmp_path, history=True)
    assert result.verdict is Verdict.VERIFIED, result.problems
    assert [(w["entry"], w["sequence"], w["restores"]) for w in result.withdrawals] == [(4, 3, 2)]


@pytest.mark.parametrize(
    ("restores", "files_of", "problem"),
    [
        (2, 0, "does not publish the files of #2"),  # claims #2, publishes #1's files
        (3, 2, "not an earlier valid snapshot"),  # restores the one it withdraws
        (5, 1, "not an earlier valid snapshot"),  # a later entry
    ],
    ids=["other-files", "restores-withdrawn", "restores-later"],
)
def test_a_withdrawal_that_does_not_hold_breaks_the_history(
    tmp_path, series, restores, files_of, problem
):
    _withdrawal_site(tmp_path, series, restores=restores, files_of=files_of)
    result = check(tmp_path, history=True)
    assert result.verdict is Verdict.HISTORY and problem in result.history_error


def test_a_withdrawal_naming_another_manifest_breaks_the_history(tmp_path, series):
    bodies = publish(tmp_path, series)
    forged = Withdrawal(2, "X", Manifest.from_bytes(bodies[0]).sha256, "error", 1)
    manifest, _, _ = signed(series[0].files, series[0], 4, Manifest.from_bytes(bodies[2]).sha256)
    body = replace(manifest, withdrawal=forged).canonical_bytes()
    signature = sign(body, KEY, trusted_comment="t", untrusted_comment="u").encode()
    for path, data in ((history_path(4), body), (history_signature_path(4), signature)):
        write(tmp_path, path, data)
    write(tmp_path, MANIFEST_PATH, body)
    write(tmp_path, SIGNATURE_PATH, signature)
    result = check(tmp_path, history=True)
    assert "names another manifest" in result.history_error
