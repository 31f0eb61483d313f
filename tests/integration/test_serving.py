"""Whole versions (docs/serving.md): a reader of a difusor's site never sees two cuts at once.

The torn-read probe: at each poll a reader follows the site's signed manifest to the version
it is served from, reads the manifest, its signature and files under that version, and
counts any poll where the pair does not verify or a file does not hash to the manifest it
was read with. The sites are served by the local sites server running the difusores' edge
function itself, with the pointer read from the KeyValueStore data plane.
"""

from __future__ import annotations

import threading
import urllib.request

import pytest

from difusion.local.probe import Probe
from difusion.services.replicate import ReplicateService

pytestmark = pytest.mark.integration
PROBED = "uabcs"


def test_a_reader_in_the_middle_of_a_delivery_sees_the_last_cut_whole(pipeline, packages):
    pipeline.process(packages[0])
    pipeline.process(packages[1])
    probe = Probe(pipeline.sites[PROBED].url, pipeline.secret_key.public_key)
    copy_step = ReplicateService._copy_step
    copies = {"n": 0}
    lock = threading.Lock()

    def probe_while_copying(self, site, prefix, step):
        copy_step(self, site, prefix, step)
        if site.difusor.difusor_id != PROBED:
            return
        with lock:
            copies["n"] += 1
            if copies["n"] % 5 == 0:  # every fifth copy into the slot, a whole poll
                probe.poll()

    # Given the third cut's delivery, with a reader polling the site between its copies
    original = ReplicateService._copy_step
    ReplicateService._copy_step = probe_while_copying  # type: ignore[method-assign]
    try:
        pipeline.process(packages[2])
    finally:
        ReplicateService._copy_step = original  # type: ignore[method-assign]
    # Then every poll made while the new version was being written saw cut 2, whole, as
    # the site's second version
    first = pipeline.versions_made(PROBED)[0]
    assert copies["n"] >= 10 and len(probe.polls) >= 2
    assert probe.torn == []
    assert {sequence for _, sequence in probe.polls} == {2}
    assert {version for version, _ in probe.polls} == {first + 1}
    # And once it is switched, the site is cut 3 as its third version
    probe.poll()
    assert probe.polls[-1] == (first + 2, 3) and probe.torn == []


def test_a_reader_polling_while_cuts_are_published_never_sees_two_at_once(pipeline, packages):
    pipeline.process(packages[0])
    probe = Probe(pipeline.sites[PROBED].url, pipeline.secret_key.public_key, sample=4)
    done = threading.Event()
    # until the last cut has been seen, whatever the machine's speed (bounded in polls,
    # not in time, should it never come)
    poller = probe.run_until(
        lambda: done.is_set() and bool(probe.polls) and probe.polls[-1][1] == 3
    )
    pipeline.process(packages[1])
    pipeline.process(packages[2])
    done.set()
    poller.join()
    # Then no poll saw a mix, and what the polls saw only went forward
    assert probe.torn == [] and probe.unreachable == 0
    versions = [version for version, _ in probe.polls]
    first = pipeline.versions_made(PROBED)[0]
    assert versions == sorted(versions) and versions[0] == first and versions[-1] == first + 2
    sequences = [sequence for _, sequence in probe.polls]
    assert sequences == sorted(sequences)


def _load(url: str, paths: list[str], times: int) -> None:
    for _ in range(times):
        for path in paths:
            with urllib.request.urlopen(url + path, timeout=10) as response:
                response.read()


def test_the_edge_keeps_each_version_and_the_literal_mode_asks_the_bucket_every_time(
    pipeline, packages
):
    pipeline.process(packages[0])
    site = pipeline.sites[PROBED]
    cache = site.cache
    pages = ["/", "/index.html", "/.well-known/prep/manifest.json"]
    # Given an audience loading the same pages (each redirected to the live version)
    viewer, origin = cache.viewer_requests, cache.origin_gets
    _load(site.url, pages, 20)
    # Then the versioned cache asked the bucket once per file of the version
    assert cache.viewer_requests - viewer == 60
    assert cache.origin_gets - origin == 2  # index.html and the manifest
    # and a new cut is new cache keys: its files are fetched once each, nothing invalidated
    pipeline.process(packages[1])
    viewer, origin = cache.viewer_requests, cache.origin_gets
    _load(site.url, pages, 20)
    assert (cache.viewer_requests - viewer, cache.origin_gets - origin) == (60, 2)
    # The literal mode (cache_mode "revalidate") over the same bucket and pointer: every
    # request is a request to the bucket, and visitors still get one whole version
    literal = pipeline.serve_difusor(pipeline.difusor(PROBED), "literal", "revalidate")
    _load(literal.url, pages, 20)
    assert literal.cache.viewer_requests == literal.cache.origin_gets == 60
    probe = Probe(literal.url, pipeline.secret_key.public_key)
    probe.poll()
    assert probe.polls == [(pipeline.versions_made(PROBED)[1], 2)] and probe.torn == []
