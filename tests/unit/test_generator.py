"""The PREP series generator: deterministic, INE layout, realistic growth."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile

from difusion.generator import CSV_COLUMNS, SUMMARY_COLUMNS, SeriesSpec, generate_series


def test_same_parameters_give_the_same_bytes():
    a = generate_series(SeriesSpec.small())
    b = generate_series(SeriesSpec.small())
    assert [s.files for s in a] == [s.files for s in b]
    assert generate_series(SeriesSpec.small(seed=7))[-1].files != a[-1].files


def test_cuts_are_named_by_cut_time_every_interval():
    series = generate_series(SeriesSpec.small(cuts=3))
    assert [s.snapshot_id for s in series] == [
        "20240602_2000_PREP_DIP_LOC_BCS",
        "20240602_2020_PREP_DIP_LOC_BCS",
        "20240602_2040_PREP_DIP_LOC_BCS",
    ]


def test_the_csv_database_follows_the_ine_layout_and_hashes_the_acta_images():
    snapshot = generate_series(SeriesSpec.small())[-1]
    rows = list(
        csv.reader(io.StringIO(snapshot.files["assets/csv/DIP_LOC_BCS_2024.csv"].decode("utf-8")))
    )
    assert rows[0][0].startswith("Diputaciones Locales")
    assert "(UTC-07:00)" in rows[1][0]
    assert tuple(rows[2]) == SUMMARY_COLUMNS
    summary = dict(zip(rows[2], rows[3], strict=True))
    assert tuple(rows[4]) == CSV_COLUMNS
    actas = [dict(zip(rows[4], row, strict=True)) for row in rows[5:]]
    assert int(summary["ACTAS_REGISTRADAS"]) == len(actas) > 0
    assert int(summary["ACTAS_ESPERADAS"]) == SeriesSpec.small().casillas
    for acta in actas:
        image = snapshot.files[f"assets/actas/DIP_LOC/{acta['CLAVE_ACTA']}.png"]
        assert image.startswith(b"\x89PNG")
        assert acta["CODIGO_INTEGRIDAD"] == hashlib.sha256(image).hexdigest()


def test_successive_cuts_add_actas_and_change_a_share_of_the_files():
    series = generate_series(SeriesSpec(casillas=300, cuts=6, image_bytes=200))
    counts = [sum(p.startswith("assets/actas/") for p in s.files) for s in series]
    assert counts == sorted(counts) and counts[-1] > counts[1]
    last, previous = series[-1].files, series[-2].files
    changed = sum(1 for p, data in last.items() if previous.get(p) != data)
    assert 0 < changed < len(last) / 2
    # Once published, an acta image never changes.
    for path, data in previous.items():
        if path.startswith("assets/actas/"):
            assert last[path] == data


def test_packages_are_written_as_ucsi_uploads_them(tmp_path):
    snapshot = generate_series(SeriesSpec.small(cuts=1))[0]
    path = snapshot.write_package(tmp_path)
    assert path.name == "20240602_2000_PREP_DIP_LOC_BCS.zip"
    with zipfile.ZipFile(path) as archive:
        assert {i.filename for i in archive.infolist()} == set(snapshot.files)
    assert snapshot.write_package(tmp_path, "tar.gz").name.endswith(".tar.gz")
