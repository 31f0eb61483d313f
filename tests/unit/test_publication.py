"""The publication plan: only what changed, in an order a reader can never trip over."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from difusion.content_types import content_type_for
from difusion.manifest import Manifest, ManifestFile, PackageInfo
from difusion.publication import (
    MANIFEST_PATH,
    PUBLIC_KEY_PATH,
    SIGNATURE_PATH,
    SourceKind,
    Tier,
    plan_publication,
    tier_of,
)

AT = datetime(2024, 6, 3, 4, 0, tzinfo=UTC)
TRIO = {PUBLIC_KEY_PATH, SIGNATURE_PATH, MANIFEST_PATH}


def manifest(files: dict[str, str], sequence: int = 1) -> Manifest:
    draft = Manifest.draft(
        election="DIP_LOC_BCS",
        snapshot_id=f"s{sequence}",
        cut_time=AT,
        package=PackageInfo("p.zip", "0" * 64, 1),
        files=[ManifestFile(p, h, 1, content_type_for(p)) for p, h in files.items()],
    )
    previous = None if sequence == 1 else "f" * 64
    return draft.chained(sequence=sequence, previous_manifest_sha256=previous, created_at=AT)


def plan(target: Manifest, current: Manifest | None):
    return plan_publication(
        target, current, manifest_bytes=10, signature_bytes=5, public_key_bytes=3
    )


def test_a_slot_that_may_hold_a_mix_of_two_cuts_gets_whatever_either_lacks():
    # Given a slot retired at cut 1 whose refresh toward cut 2 was cut short
    one = manifest({"index.html": "1" * 64, "a.json": "2" * 64, "gone.png": "3" * 64})
    two = manifest({"index.html": "1" * 64, "a.json": "5" * 64, "b.png": "6" * 64}, 2)
    # When cut 3 is planned against both
    three = manifest({"index.html": "1" * 64, "a.json": "5" * 64, "c.png": "7" * 64}, 3)
    result = plan_publication(
        three, (one, two), manifest_bytes=10, signature_bytes=5, public_key_bytes=3
    )
    staged = {s.path for s in result.copies if s.source is SourceKind.STAGED}
    # Then a file is skipped only when both cuts have it as cut 3 does (index.html);
    # a.json is copied (cut 1's copy may still be there), and what either had is removed
    assert staged == {"a.json", "c.png"}
    assert result.deletions == ("b.png", "gone.png")
    # And with only cut 2 as the base, a.json would not have been copied
    only_two = plan(three, two)
    assert {s.path for s in only_two.copies if s.source is SourceKind.STAGED} == {"c.png"}


def test_tiers_follow_what_references_what():
    assert tier_of("assets/actas/DIP_LOC/0301B0100.png") is Tier.CONTENT
    assert tier_of("assets/csv/DIP_LOC_BCS_2024.csv") is Tier.CONTENT
    assert tier_of("assets/js/prep.js") is Tier.CONTENT
    assert tier_of("assets/JSON/DIP_LOC/resumen.json") is Tier.DATA
    assert tier_of("index.html") is Tier.PAGES
    assert tier_of("Diputaciones.HTM") is Tier.PAGES


def test_first_delivery_copies_everything_then_the_signed_manifest():
    target = manifest({"index.html": "1" * 64, "a.json": "2" * 64, "b.png": "3" * 64})
    result = plan(target, None)
    assert [step.path for step in result.copies] == [
        "b.png",
        "a.json",
        "index.html",
        PUBLIC_KEY_PATH,
        SIGNATURE_PATH,
        MANIFEST_PATH,
    ]
    assert result.deletions == ()
    assert result.copies[-1].source is SourceKind.MANIFEST
    assert result.copies[-1].sha256 == target.sha256


def test_a_later_cut_copies_only_changed_files_and_removes_dropped_ones():
    before = manifest({"index.html": "1" * 64, "a.json": "2" * 64, "old.png": "3" * 64})
    after = manifest({"index.html": "1" * 64, "a.json": "9" * 64, "new.png": "4" * 64}, 2)
    result = plan(after, before)
    assert [s.path for s in result.copies if s.source is SourceKind.STAGED] == [
        "new.png",
        "a.json",
    ]
    assert result.deletions == ("old.png",)


def test_replanning_a_delivered_snapshot_only_rewrites_the_signed_manifest():
    target = manifest({"index.html": "1" * 64, "a.json": "2" * 64})
    result = plan(target, target)
    assert {s.path for s in result.copies} == TRIO
    assert result.deletions == ()


site_files = st.dictionaries(
    st.sampled_from(
        [f"assets/actas/{i}.png" for i in range(8)]
        + [f"assets/JSON/{i}.json" for i in range(6)]
        + [f"p{i}.html" for i in range(4)]
        + ["assets/csv/db.csv", "assets/js/prep.js"]
    ),
    st.sampled_from(["1" * 64, "2" * 64, "3" * 64]),
    min_size=1,
)


@settings(max_examples=300)
@given(site_files, st.one_of(st.none(), site_files))
def test_applying_a_plan_yields_exactly_the_target_site(target_files, current_files):
    # Given a difusor bucket holding the current snapshot (or nothing)
    current = manifest(current_files) if current_files is not None else None
    target = manifest(target_files, 2)
    bucket = dict(current_files or {})
    # When the plan is applied step by step
    result = plan(target, current)
    for step in result.copies:
        bucket[step.path] = step.sha256
    for path in result.deletions:
        del bucket[path]
    # Then the bucket holds the target's files, exactly, plus the signed manifest trio
    assert {p: h for p, h in bucket.items() if p not in TRIO} == target_files
    assert set(bucket) >= TRIO


@settings(max_examples=300)
@given(site_files, st.one_of(st.none(), site_files))
def test_no_write_points_at_something_not_yet_written(target_files, current_files):
    current = manifest(current_files) if current_files is not None else None
    result = plan(manifest(target_files, 2), current)
    tiers = [step.tier for step in result.copies]
    # Tiers never go backwards: content, then data, then pages, then the signed manifest.
    assert tiers == sorted(tiers)
    # The manifest is the very last write; removals come after every write.
    assert result.copies[-1].path == MANIFEST_PATH
    # Nothing still listed is removed; nothing unchanged is copied.
    assert not set(result.deletions) & set(target_files)
    unchanged = {p for p, h in target_files.items() if (current_files or {}).get(p) == h}
    assert not unchanged & {s.path for s in result.copies}


def test_a_repair_copies_the_named_files_again_even_where_the_slot_has_them():
    target = manifest({"index.html": "a" * 64, "data/x.json": "b" * 64, "img/1.png": "c" * 64})
    # Given a slot that holds the target (as far as anyone knows)
    repair = plan(target, target).also_copying(target, ["data/x.json", "not/listed.png"])
    # Then the altered file is copied again, with the signed manifest; nothing else
    assert [s.path for s in repair.copies] == ["data/x.json", *sorted(TRIO, key=_trio_order)]
    assert repair.deletions == ()
    assert plan(target, None).also_copying(target, ["index.html"]) == plan(target, None)


def _trio_order(path: str) -> int:
    return [PUBLIC_KEY_PATH, SIGNATURE_PATH, MANIFEST_PATH].index(path)


def test_a_delivery_request_keeps_its_scope_and_paths_through_the_queue():
    from difusion.models import DeliveryRequest, DeliveryScope

    request = DeliveryRequest(
        "E",
        "d",
        "s",
        3,
        "k",
        "h",
        "2024-06-03T04:00:00+00:00",
        "repair:p",
        DeliveryScope.REPAIR,
        ("a.json",),
    )
    again = DeliveryRequest.from_json(json.loads(json.dumps(request.to_json())))
    assert again == request and again.is_redelivery
    legacy = {k: v for k, v in request.to_json().items() if k not in ("scope", "paths")}
    assert DeliveryRequest.from_json(legacy).scope is DeliveryScope.DELTA


@given(
    st.dictionaries(
        st.from_regex(r"[a-z]{1,8}/[a-z]{1,8}\.(png|json|html|csv)", fullmatch=True),
        st.sampled_from(["a" * 64, "b" * 64]),
        max_size=60,
    ),
    st.integers(min_value=1, max_value=9),
)
def test_shards_split_each_tier_exactly_once_and_leave_the_manifest_to_the_commit(files, count):
    target = manifest(files)
    full = plan(target, None)
    for tier in full.content_tiers:
        parts = [full.shard(tier, index, count) for index in range(count)]
        everything = [step for part in parts for step in part]
        assert sorted(s.path for s in everything) == sorted(
            s.path for s in full.copies if s.tier is tier
        )
        assert len(everything) == len({s.path for s in everything})  # no copy twice
        # every runner of a shard agrees on its part
        assert parts == [full.shard(tier, index, count) for index in range(count)]
    assert Tier.SIGNED_MANIFEST not in full.content_tiers
    assert [s.path for s in full.signed] == [PUBLIC_KEY_PATH, SIGNATURE_PATH, MANIFEST_PATH]
