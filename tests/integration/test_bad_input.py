"""Bad input: refused before anything reaches a difusor, the reason recorded and shown."""

from __future__ import annotations

import pytest

from difusion.generator import Snapshot
from difusion.prep_data import read_acta_rows
from tests.builders import SITE, set_zip_flag, zip_bytes

pytestmark = pytest.mark.integration


def _snapshot_of_buckets(pipeline):
    return {
        d.difusor_id: pipeline.site_objects(d.difusor_id) for d in pipeline.deployment.difusores
    }


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("20240602_2020_PREP_DIP_LOC_BCS.zip", zip_bytes({"../../evil.html": b"x"}), "unsafe_path"),
        ("20240602_2020_PREP_DIP_LOC_BCS.zip", b"PK\x03\x04 truncated", "corrupt"),
        ("20240602_2020_PREP_DIP_LOC_BCS.zip", set_zip_flag(zip_bytes(SITE), 1), "encrypted"),
        (
            "20240602_2020_PREP_DIP_LOC_BCS.zip",
            zip_bytes({**SITE, ".well-known/prep/manifest.json": b"{}"}),
            "reserved_path",
        ),
        ("resultados_finales.zip", zip_bytes(SITE), "bad_name"),
        ("20240602_2020_PREP_GUB_CDMX.zip", zip_bytes(SITE), "wrong_election"),
        ("20240602_1950_PREP_DIP_LOC_BCS.zip", zip_bytes(SITE), "stale"),
    ],
)
def test_a_rejected_package_changes_no_difusor_and_records_why(
    pipeline, packages, tmp_path, name, data, code
):
    # Given difusores publishing an accepted first cut
    pipeline.process(packages[0])
    before = _snapshot_of_buckets(pipeline)
    # When a bad package lands in the origin bucket
    bad = tmp_path / name
    bad.write_bytes(data)
    record = pipeline.process(bad)
    # Then it is rejected with a specific, readable reason
    assert record["status"] == "rejected"
    assert record["rejection_code"] == code
    assert len(record["rejection_reason"]) > 10
    # ...no difusor bucket changed by a single byte, no delivery was recorded for it
    assert _snapshot_of_buckets(pipeline) == before
    assert pipeline.ledger.items(f"DELIVERY#{record['snapshot_id']}#") == []
    # ...the origin keeps the package for inspection, and the head did not move
    assert pipeline.s3.head_object(Bucket=pipeline.deployment.origin_bucket, Key=f"incoming/{name}")
    assert pipeline.ledger.head().snapshot_id == packages[0].name.removesuffix(".zip")
    # ...and a rejection is a final answer, not a failure to retry
    assert pipeline.dispatcher.handler_errors == []
    assert pipeline.dead_letters("ingest") == []


def test_a_rejected_first_package_leaves_difusores_empty(pipeline, tmp_path):
    bad = tmp_path / "20240602_2000_PREP_DIP_LOC_BCS.zip"
    bad.write_bytes(zip_bytes({"a/../../../etc/passwd": b"root"}))
    assert pipeline.process(bad)["status"] == "rejected"
    assert all(objects == {} for objects in _snapshot_of_buckets(pipeline).values())
    assert pipeline.ledger.head() is None


def test_a_different_package_under_an_accepted_name_is_refused_as_a_conflict(
    pipeline, packages, tmp_path
):
    pipeline.process(packages[0])
    before = _snapshot_of_buckets(pipeline)
    impostor = tmp_path / packages[0].name
    impostor.write_bytes(zip_bytes({**SITE, "index.html": b"<h1>otros resultados</h1>"}))
    pipeline.upload(impostor)
    pipeline.settle()
    snapshot_id = packages[0].name.removesuffix(".zip")
    # The accepted record is untouched; the refusal is recorded beside it.
    assert pipeline.ledger.snapshot(snapshot_id)["status"] == "accepted"
    [rejection] = pipeline.ledger.items(f"REJECTION#{snapshot_id}#")
    assert rejection["rejection_code"] == "conflict"
    assert _snapshot_of_buckets(pipeline) == before


def test_an_older_cut_arriving_late_is_refused_as_stale(pipeline, packages):
    pipeline.process(packages[1])
    before = _snapshot_of_buckets(pipeline)
    record = pipeline.process(packages[0])
    assert record["rejection_code"] == "stale"
    assert "not newer" in record["rejection_reason"]
    assert _snapshot_of_buckets(pipeline) == before


@pytest.mark.parametrize("fault", ["altered image", "wrong code"])
def test_a_package_contradicting_its_own_codigo_integridad_is_refused_naming_the_acta(
    pipeline, series, packages, tmp_path, fault
):
    # Given difusores publishing an accepted first cut
    pipeline.process(packages[0])
    before = _snapshot_of_buckets(pipeline)
    origin = _origin_keys(pipeline)
    # When the next cut's database and one of its acta images disagree
    cut = series[1]
    database = next(p for p in cut.files if p.startswith("assets/csv/"))
    row = read_acta_rows(cut.files[database])[0]
    image = next(p for p in cut.files if p.endswith(f"/{row.acta}.png"))
    bad = Snapshot(cut_time=cut.cut_time, election_code=cut.election_code)
    bad.files.update(cut.files)
    if fault == "altered image":
        bad.files[image] = cut.files[image] + b"\0"
    else:
        bad.files[database] = cut.files[database].replace(row.code.encode(), b"e" * 64)
    record = pipeline.process(bad.write_package(tmp_path / "bad"))
    # Then it is refused, the ledger naming the casilla, the acta and the code
    assert record["status"] == "rejected"
    assert record["rejection_code"] == "acta_integrity"
    assert f"casilla {row.casilla}, acta {row.acta}" in record["rejection_reason"]
    assert "SHA-256 calculado" in record["rejection_reason"]
    # ...nothing staged, signed or delivered: every bucket as it was (the origin gained only
    # the package, kept for inspection), the head where it was
    assert _snapshot_of_buckets(pipeline) == before
    assert _origin_keys(pipeline) - origin == {f"incoming/{bad.package_name()}"}
    assert pipeline.ledger.items(f"DELIVERY#{record['snapshot_id']}#") == []
    assert pipeline.ledger.head().snapshot_id == packages[0].name.removesuffix(".zip")
    assert pipeline.dispatcher.handler_errors == []
    assert pipeline.dead_letters("ingest") == []
    # ...and the corrected package, uploaded under the same name, is accepted
    assert pipeline.process(packages[1])["status"] == "accepted"


def _origin_keys(pipeline) -> set[str]:
    pages = pipeline.s3.get_paginator("list_objects_v2").paginate(
        Bucket=pipeline.deployment.origin_bucket
    )
    return {o["Key"] for page in pages for o in page.get("Contents", [])}
