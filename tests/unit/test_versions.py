"""The version pointer: its rules, its steps, and agreement with the edge function itself."""

from __future__ import annotations

import json

import pytest

from difusion.local.edge import EdgeFunction, EdgeResponse, OriginRequest
from difusion.versions import (
    MAX_HELD,
    MAX_VALUE_BYTES,
    Held,
    Placement,
    Pointer,
    PointerError,
    SiteState,
    Standby,
    other_slot,
    slot_prefix,
)

A, B, C = Held(1, "a" * 64), Held(2, "b" * 64), Held(3, "c" * 64)
SHA_A = A.manifest_sha256


@pytest.fixture(scope="module")
def edge():
    with EdgeFunction() as function:
        yield function


def test_a_first_version_then_switches_alternate_slots_and_never_reuse_a_version():
    # Given a site's first version in slot a
    first = Pointer.first("a", A)
    # When two deliveries each retire the previous version and switch
    second = first.retired(B, at=100).switched(B)
    third = second.retired(C, at=200).switched(C)
    # Then slots alternate, versions grow by one, the one before stays routable
    assert (first.live, first.previous) == (Placement(1, "a", A), None)
    assert first.standby == Standby("b", None)  # the other slot: unknown, refreshed in full
    assert (second.live, second.previous) == (Placement(2, "b", B), Placement(1, "a", A))
    assert (third.live, third.previous) == (Placement(3, "a", C), Placement(2, "b", B))
    assert third.standby_slot() == "b" and third.retired(A, at=300).routed_slots == {"a"}
    assert third.routed_slots == {"a", "b"} and third.standby_holds() == (B,)


def test_a_slot_still_routed_is_never_the_one_switched_to():
    # Given a pointer whose previous version still holds the standby slot
    pointer = Pointer.first("a", A).retired(B, at=1).switched(B)
    # Then switching without retiring it first is refused
    with pytest.raises(PointerError, match="retire"):
        pointer.switched(C)
    with pytest.raises(PointerError, match="standby"):
        Pointer(SiteState.LIVE, live=pointer.live, last_version=2, standby=Standby("b", None))


def test_a_refresh_cut_short_leaves_a_slot_whose_possible_contents_are_known():
    # Given version 2 live in b, version 1 (manifest A) routable in a
    site = Pointer.first("a", A).retired(B, at=100).switched(B)
    # When a delivery of C retires version 1 (and is then cut short)
    retired = site.retired(C, at=200)
    # Then slot a may hold A's files, C's, or a mix: both are planned against
    assert retired.standby == Standby("a", (A, C), retired_at=200)
    assert retired.previous is None and retired.live == site.live
    # And a later attempt toward another manifest adds it, keeping when it was retired
    again = retired.retired(Held(4, "d" * 64), at=300)
    assert again.standby_holds() == (A, C, Held(4, "d" * 64)) and again.standby.retired_at == 200
    # Past MAX_HELD manifests the slot counts as unknown: refreshed in full
    many = again
    for n in range(5, 5 + MAX_HELD):
        many = many.retired(Held(n, f"{n:064x}"), at=400)
    assert many.standby_holds() is None
    # A retired pointer round-trips through its stored text
    assert Pointer.from_text(retired.to_text()) == retired


def test_a_repair_switch_drops_the_live_slot_from_routing_and_from_trust():
    # Given version 2 live in b (whose files were altered), version 1 routable in a
    site = Pointer.first("a", A).retired(B, at=100).switched(B)
    # When the same manifest is republished into a as a new version
    repaired = site.retired(B, at=200).switched(B, keep_previous=False)
    # Then version 3 is live, nothing else routable, and b's contents are unknown
    assert repaired.live == Placement(3, "a", B) and repaired.previous is None
    assert repaired.standby == Standby("b", None)


def test_after_a_suspension_the_next_version_is_above_every_earlier_one():
    # Given a site that reached version 7, then was suspended
    site = Pointer.first("a", A, after=6)
    suspended = Pointer.suspended("aviso-1", site.last_version)
    # When it is reinstated
    back = Pointer.first("b", B, after=suspended.last_version)
    # Then its first version is 8, and the suspended pointer round-trips its last version
    assert site.live.version == 7 and back.live.version == 8
    assert Pointer.from_text(suspended.to_text()) == suspended
    with pytest.raises(PointerError):
        suspended.switched(C)


@pytest.mark.parametrize(
    "text, why",
    [
        ("not json", "not JSON"),
        ("[]", "object"),
        ('{"state":"gone"}', "unknown site state"),
        ('{"state":"live"}', "placement"),
        (
            '{"state":"live","live":{"version":0,"slot":"a","sequence":1,"manifest_sha256":"'
            + SHA_A
            + '"}}',
            "positive",
        ),
        (
            '{"state":"live","live":{"version":true,"slot":"a","sequence":1,"manifest_sha256":"'
            + SHA_A
            + '"}}',
            "positive",
        ),
        (
            '{"state":"live","live":{"version":1,"slot":"c","sequence":1,"manifest_sha256":"'
            + SHA_A
            + '"}}',
            "no slot",
        ),
        (
            '{"state":"live","live":{"version":2,"slot":"a","sequence":1,"manifest_sha256":"'
            + SHA_A
            + '"},"previous":{"version":1,"slot":"a","sequence":1,"manifest_sha256":"'
            + SHA_A
            + '"}}',
            "other slot",
        ),
        ('{"state":"suspended","notice":"../x"}', "notice"),
        (
            '{"state":"suspended","notice":"n","live":{"version":1,"slot":"a","sequence":1,"manifest_sha256":"'
            + SHA_A
            + '"}}',
            None,
        ),
    ],
)
def test_a_pointer_the_function_would_refuse_is_refused_here(edge, text, why):
    # When the pointer is parsed here
    if why is None:
        # (a suspended pointer's other fields are ignored by both sides)
        assert Pointer.from_text(text).state is SiteState.SUSPENDED
        return
    with pytest.raises(PointerError, match=why):
        Pointer.from_text(text)
    # Then the function refuses it too: 503, never a guessed slot
    answer = edge.route(text, "/index.html")
    assert isinstance(answer, EdgeResponse) and answer.status == 503


def test_every_pointer_written_here_routes_in_the_function_as_written(edge):
    # Given the pointers of a site's life: first, switched, retired, suspended, reinstated
    first = Pointer.first("a", A)
    switched = first.retired(B, at=1).switched(B)
    retired = switched.retired(C, at=2)
    suspended = Pointer.suspended("aviso-20240602-2140", switched.last_version)
    back = Pointer.first("a", C, after=suspended.last_version)
    # Then the function sends each version to its slot, with the version in the cache key
    for pointer in (first, switched, retired, back):
        text = pointer.to_text()
        assert len(text.encode()) <= MAX_VALUE_BYTES
        for placement in (pointer.live, pointer.previous):
            if placement is None:
                continue
            routed = edge.route(text, f"/v/{placement.version}/diputaciones/datos.json")
            assert routed == OriginRequest(
                f"/{slot_prefix(placement.slot)}diputaciones/datos.json",
                {"v": {"value": str(placement.version)}},
            )
        unversioned = edge.route(text, "/diputaciones/", "tab=1")
        assert unversioned == EdgeResponse(
            302,
            {
                "location": f"/v/{pointer.live.version}/diputaciones/?tab=1",
                "cache-control": "no-store",
                "access-control-allow-origin": "*",
            },
        )
    # A retired version is sent to the live one
    gone = edge.route(retired.to_text(), "/v/1/index.html")
    assert isinstance(gone, EdgeResponse) and gone.headers["location"] == "/v/2/index.html"
    # and a suspended site serves its notice
    notice = edge.route(suspended.to_text(), "/")
    assert notice == OriginRequest(
        "/_aviso/aviso-20240602-2140/index.html", {"v": {"value": "aviso-aviso-20240602-2140"}}
    )


def test_a_pointer_without_its_manifest_hash_is_never_written_though_the_function_ignores_it(edge):
    # Given a pointer whose placement names no SHA-256 (the function does not read it)
    text = '{"state":"live","live":{"version":1,"slot":"a","sequence":1,"manifest_sha256":"xyz"}}'
    # Then the function routes it, but it is not a pointer this side writes or accepts
    assert isinstance(edge.route(text, "/v/1/index.html"), OriginRequest)
    with pytest.raises(PointerError, match="SHA-256"):
        Pointer.from_text(text)


def test_a_pointer_round_trips_and_stays_small():
    pointer = Pointer.first("a", A, after=10**15 - 3).retired(B, at=5).switched(B)
    text = pointer.to_text()
    assert Pointer.from_text(text) == pointer
    assert json.loads(text)["last_version"] == 10**15 - 1
    assert len(text) < 400
    # the longest pointer: a standby holding MAX_HELD manifests, fits the KVS's 1 KB
    widest = Pointer.first("a", A, after=10**15 - 4).retired(B, at=1).switched(B)
    for n in range(2, 1 + MAX_HELD):
        widest = widest.retired(Held(10**12 - n, f"{n:064x}"), at=2**40)
    assert widest.standby_holds() is not None and len(widest.to_text()) <= MAX_VALUE_BYTES
    assert other_slot("a") == "b" and other_slot("b") == "a"
    with pytest.raises(PointerError):
        other_slot("c")
