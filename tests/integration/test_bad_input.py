"""Bad input: refused before anything reaches a difusor, the reason recorded and shown."""

from __future__ import annotations

import pytest

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
