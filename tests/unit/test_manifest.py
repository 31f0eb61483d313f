from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from difusion.errors import ManifestInvalid
from difusion.manifest import Manifest, ManifestFile, PackageInfo, canonical_json

CUT = datetime(2024, 6, 2, 21, 20, tzinfo=ZoneInfo("America/Mazatlan"))
SIGNED_AT = datetime(2024, 6, 3, 4, 21, 5, tzinfo=UTC)


def draft(files=None) -> Manifest:
    return Manifest.draft(
        election="DIP_LOC_BCS",
        snapshot_id="20240602_2120_PREP_DIP_LOC_BCS",
        cut_time=CUT,
        package=PackageInfo("20240602_2120_PREP_DIP_LOC_BCS.zip", "a" * 64, 1234),
        files=files
        or [
            ManifestFile("index.html", "b" * 64, 10, "text/html; charset=utf-8"),
            ManifestFile("assets/actas/AYUN/comondú.png", "c" * 64, 20, "image/png"),
        ],
    )


def test_canonical_form_is_sorted_compact_utf8():
    manifest = draft().chained(sequence=1, previous_manifest_sha256=None, created_at=SIGNED_AT)
    body = manifest.canonical_bytes()
    assert b" " not in body.replace(b"; charset", b"")  # no insignificant whitespace
    assert "comondú".encode() in body  # UTF-8, not \\u escapes
    parsed = json.loads(body)
    assert (
        body
        == json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert [f["path"] for f in parsed["files"]] == sorted(f["path"] for f in parsed["files"])
    assert parsed["snapshot"] == {
        "id": "20240602_2120_PREP_DIP_LOC_BCS",
        "cut_time": "2024-06-02T21:20:00-07:00",
    }
    assert parsed["created_at"] == "2024-06-03T04:21:05Z"
    assert parsed["file_count"] == 2 and parsed["total_bytes"] == 30


def test_chain_links_each_manifest_to_the_previous_one():
    first = draft().chained(sequence=1, previous_manifest_sha256=None, created_at=SIGNED_AT)
    second = draft().chained(
        sequence=2, previous_manifest_sha256=first.sha256, created_at=SIGNED_AT
    )
    assert json.loads(second.canonical_bytes())["previous_manifest_sha256"] == first.sha256
    assert first.sha256 != second.sha256


def test_only_the_first_manifest_lacks_a_predecessor():
    with pytest.raises(ValueError):
        draft().chained(sequence=2, previous_manifest_sha256=None, created_at=SIGNED_AT)
    with pytest.raises(ValueError):
        draft().chained(sequence=1, previous_manifest_sha256="d" * 64, created_at=SIGNED_AT)


def test_round_trip_preserves_every_field():
    manifest = draft().chained(sequence=7, previous_manifest_sha256="e" * 64, created_at=SIGNED_AT)
    assert Manifest.from_bytes(manifest.canonical_bytes()) == manifest


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m.update(format="other/1"),
        lambda m: m["files"][0].update(sha256="XYZ"),
        lambda m: m["files"][0].update(size=-1),
        lambda m: m.update(file_count=99),
        lambda m: m["files"].reverse(),
        lambda m: m.update(sequence="7"),
        lambda m: m.pop("package"),
    ],
)
def test_invalid_manifests_are_refused(mutate):
    manifest = draft().chained(sequence=7, previous_manifest_sha256="e" * 64, created_at=SIGNED_AT)
    raw = json.loads(manifest.canonical_bytes())
    mutate(raw)
    with pytest.raises(ManifestInvalid):
        Manifest.from_bytes(canonical_json(raw))


def test_non_canonical_bytes_are_refused():
    manifest = draft().chained(sequence=1, previous_manifest_sha256=None, created_at=SIGNED_AT)
    pretty = json.dumps(json.loads(manifest.canonical_bytes()), indent=2).encode()
    with pytest.raises(ManifestInvalid, match="canonical"):
        Manifest.from_bytes(pretty)


paths = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzáéíóúñ0123456789_-/.", min_size=1, max_size=30),
    min_size=1,
    max_size=20,
    unique=True,
)


@given(paths, st.randoms())
def test_file_order_never_changes_the_manifest_hash(names, rnd):
    files = [ManifestFile(n, f"{i:064x}", i, "application/json") for i, n in enumerate(names)]
    shuffled = list(files)
    rnd.shuffle(shuffled)
    a = draft(files).chained(sequence=1, previous_manifest_sha256=None, created_at=SIGNED_AT)
    b = draft(shuffled).chained(sequence=1, previous_manifest_sha256=None, created_at=SIGNED_AT)
    assert a.canonical_bytes() == b.canonical_bytes()
