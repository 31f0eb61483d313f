"""Ingest refuses a package that contradicts its own CODIGO_INTEGRIDAD: an acta image that
does not hash to the code its database gives it, or that the package lacks."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import pytest

from difusion import vocabulary
from difusion.archive import ArchiveLimits, scan_archive
from difusion.errors import PackageRejected, RejectionCode
from difusion.generator import SeriesSpec, Snapshot, generate_series
from difusion.package_name import ArchiveFormat
from difusion.prep_data import NAMED_IN_REASON, read_acta_rows, scan_package

LIMITS = ArchiveLimits()
FORMATS = {"zip": ArchiveFormat.ZIP, "tar.gz": ArchiveFormat.TAR_GZ}
DATABASE = "assets/csv/DIP_LOC_BCS_2024.csv"


@pytest.fixture(scope="module")
def series() -> list[Snapshot]:
    return generate_series(SeriesSpec.small(cuts=3))


def copy_of(snapshot: Snapshot, files: dict[str, bytes] | None = None) -> Snapshot:
    """The snapshot with ``files`` replaced (the module's series stays as generated)."""
    changed = Snapshot(cut_time=snapshot.cut_time, election_code=snapshot.election_code)
    changed.files.update({**snapshot.files, **(files or {})})
    return changed


def package(snapshot: Snapshot, tmp_path: Path, fmt: str = "zip") -> bytes:
    return snapshot.write_package(tmp_path / fmt, fmt).read_bytes()


def scan(data: bytes, fmt: str = "zip"):
    return scan_package(io.BytesIO(data), FORMATS[fmt], LIMITS)


def refusal(data: bytes) -> PackageRejected:
    with pytest.raises(PackageRejected) as caught:
        scan(data)
    return caught.value


def database_rows(snapshot: Snapshot) -> list[dict[str, str]]:
    rows = list(csv.reader(io.StringIO(snapshot.files[DATABASE].decode("utf-8"))))
    return [dict(zip(rows[4], row, strict=True)) for row in rows[5:]]


def image_of(row: dict[str, str]) -> str:
    return f"assets/actas/DIP_LOC/{row['CLAVE_ACTA']}.png"


def rewrite_code(snapshot: Snapshot, acta: str, code: str) -> bytes:
    """The database with acta's CODIGO_INTEGRIDAD replaced by ``code``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in csv.reader(io.StringIO(snapshot.files[DATABASE].decode("utf-8"))):
        if len(row) > 1 and row[1] == acta:
            row[row.index(_code_of(snapshot, acta))] = code
        writer.writerow(row)
    return out.getvalue().encode("utf-8")


def _code_of(snapshot: Snapshot, acta: str) -> str:
    return next(r.code for r in read_acta_rows(snapshot.files[DATABASE]) if r.acta == acta)


# --- refused ---------------------------------------------------------------------------------


def test_an_altered_acta_image_refuses_the_package_naming_casilla_acta_code_and_hash(
    series, tmp_path
):
    # Given a cut whose acta image was changed after its code was computed
    snapshot = series[-1]
    row = database_rows(snapshot)[2]
    altered = snapshot.files[image_of(row)] + b"\0"
    bad = copy_of(snapshot, {image_of(row): altered})
    # When ingest checks it
    rejection = refusal(package(bad, tmp_path))
    # Then it is refused with its own code, naming the casilla, the acta, both hashes
    assert rejection.code is RejectionCode.ACTA_INTEGRITY
    assert f"casilla {row['CLAVE_CASILLA']}, acta {row['CLAVE_ACTA']}" in rejection.reason
    assert f"CODIGO_INTEGRIDAD {row['CODIGO_INTEGRIDAD']}" in rejection.reason
    assert f"SHA-256 calculado {hashlib.sha256(altered).hexdigest()}" in rejection.reason
    assert rejection.reason.startswith("1 de ")
    # ...and says what the operator does next, in Spanish
    assert "Qué hacer" in rejection.reason and "corte siguiente" in rejection.reason


def test_a_wrong_code_in_the_database_for_an_unaltered_image_refuses_the_package(series, tmp_path):
    snapshot = series[-1]
    row = database_rows(snapshot)[0]
    wrong = "0" * 64
    bad = copy_of(snapshot, {DATABASE: rewrite_code(snapshot, row["CLAVE_ACTA"], wrong)})
    rejection = refusal(package(bad, tmp_path))
    assert rejection.code is RejectionCode.ACTA_INTEGRITY
    assert f"acta {row['CLAVE_ACTA']}" in rejection.reason
    assert f"CODIGO_INTEGRIDAD {wrong}" in rejection.reason
    # the hash of the image as it is, which is the code the database should have given
    assert f"SHA-256 calculado {row['CODIGO_INTEGRIDAD']}" in rejection.reason


def test_a_code_whose_image_the_package_lacks_refuses_it(series, tmp_path):
    # Every verifier would show this acta "sin imagen": the database promises an image
    snapshot = series[-1]
    row = database_rows(snapshot)[1]
    bad = copy_of(snapshot)
    del bad.files[image_of(row)]
    rejection = refusal(package(bad, tmp_path))
    assert rejection.code is RejectionCode.ACTA_INTEGRITY
    assert f"acta {row['CLAVE_ACTA']}" in rejection.reason
    assert "no trae su imagen" in rejection.reason


def test_many_contradictions_are_counted_and_the_first_few_named(series, tmp_path):
    snapshot = series[-1]
    rows = database_rows(snapshot)[: NAMED_IN_REASON + 3]
    bad = copy_of(
        snapshot,
        {image_of(r): snapshot.files[image_of(r)] + b"x" for r in rows},
    )
    rejection = refusal(package(bad, tmp_path))
    assert rejection.reason.startswith(f"{len(rows)} de ")
    assert rejection.reason.count("SHA-256 calculado") == NAMED_IN_REASON
    assert "y 3 más" in rejection.reason


# --- accepted --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_generated_cut_is_accepted_with_the_same_entries_as_the_archive_scan(
    series, tmp_path, fmt
):
    # The demo's and the tests' packages: consistent by construction
    for snapshot in series:
        data = package(snapshot, tmp_path, fmt)
        assert scan(data, fmt) == scan_archive(io.BytesIO(data), FORMATS[fmt], LIMITS)


def test_rows_without_a_code_and_without_an_image_are_accepted(series, tmp_path):
    # Given an acta registered but not yet digitized: PREP publishes its row, with no code
    # and no image, and the verifiers skip it
    snapshot = series[-1]
    row = database_rows(snapshot)[1]
    pending = copy_of(snapshot, {DATABASE: rewrite_code(snapshot, row["CLAVE_ACTA"], "")})
    del pending.files[image_of(row)]
    entries = scan(package(pending, tmp_path))
    assert image_of(row) not in {e.path for e in entries}


def test_a_code_written_in_capitals_matches_its_image(series, tmp_path):
    snapshot = series[-1]
    row = database_rows(snapshot)[0]
    upper = rewrite_code(snapshot, row["CLAVE_ACTA"], row["CODIGO_INTEGRIDAD"].upper())
    scan(package(copy_of(snapshot, {DATABASE: upper}), tmp_path))


def test_the_package_is_read_once_the_images_hashed_only_for_the_manifest(series, tmp_path):
    # Given a package of stored (uncompressed) images, read through a counting stream
    data = package(series[-1], tmp_path)

    class Counting(io.BytesIO):
        read_bytes = 0

        def read(self, size: int | None = -1) -> bytes:
            chunk = super().read(size)
            Counting.read_bytes += len(chunk)
            return chunk

    # When ingest's checks run
    scan_package(Counting(data), ArchiveFormat.ZIP, LIMITS)
    # Then the package was read about once (a second pass over the images would double it)
    assert len(data) <= Counting.read_bytes < 1.3 * len(data)


def test_the_refusal_has_a_spanish_description_for_the_ledger_and_closing_record():
    assert vocabulary.rejection(str(RejectionCode.ACTA_INTEGRITY)) == (
        "imagen de acta ausente o distinta de su CODIGO_INTEGRIDAD"
    )
