"""Whole versions (docs/serving.md): a reader of a difusor's site never sees two cuts at once.

The torn-read probe: at each poll a reader follows the site's signed manifest to the version
it is served from, reads the manifest, its signature and files under that version, and
counts any poll where the pair does not verify or a file does not hash to the manifest it
was read with. The page-load probe loads pages as a browser does, by the site's own absolute
URLs, and counts a load that got anything not of its page's version; headless Chromium does
the same once. The sites are served by the local sites server running the difusores' edge
function itself, with the pointer read from the KeyValueStore data plane; the controls run
the function as it was before #23 over the same bucket and pointer.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request

import pytest

from difusion.adapters import factory
from difusion.local import browser
from difusion.local.edge import BEFORE_ISSUE_23
from difusion.local.probe import PageLoads, Probe, at_switches, control_site
from difusion.services.replicate import ReplicateService

pytestmark = pytest.mark.integration
PROBED = "uabcs"


def test_a_reader_in_the_middle_of_a_delivery_sees_the_last_cut_whole(
    pipeline, packages, monkeypatch
):
    # The reader's whole-site polls make this delivery far slower than any real one, while
    # the accelerated clock shrinks its step's own timeout to two thirds of 9 s: with 900 s
    # instead, its heartbeat does not let go mid-delivery and no retry delivers beside it.
    monkeypatch.setattr(factory, "STEP_TIMEOUT_SHARE", 100.0)
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


# page loads begun just before each switch and finished just after it, per site
AT_EACH_SWITCH = 12


def test_every_page_load_gets_its_page_s_cut_across_switches_and_the_old_function_did_not(
    pipeline, packages
):
    pipeline.process(packages[0])
    site = pipeline.sites[PROBED]
    key = pipeline.secret_key.public_key
    control_sites, control = control_site(pipeline, PROBED, BEFORE_ISSUE_23)
    probes = {"edge": PageLoads(site.url, key), "control": PageLoads(control.url, key, seed=1)}

    def begin_pages():
        return {name: [p.begin() for _ in range(AT_EACH_SWITCH)] for name, p in probes.items()}

    def finish_pages(begun):
        for name, pages in begun.items():
            for page in pages:
                probes[name].finish(page)

    copy_step = ReplicateService._copy_step
    copies = {"n": 0}
    lock = threading.Lock()

    def load_while_copying(self, target, prefix, step):
        copy_step(self, target, prefix, step)
        if target.difusor.difusor_id != PROBED:
            return
        with lock:
            copies["n"] += 1
            if copies["n"] % 4 == 0:  # every fourth copy into the slot, a whole page load
                for each in probes.values():
                    each.load()

    # Given visitors who open a page just before each switch and load what it loads just
    # after it, and others loading whole pages while the standby slot is refreshed
    ReplicateService._copy_step = load_while_copying  # type: ignore[method-assign]
    try:
        with at_switches(pipeline.difusor(PROBED).kvs_arn, begin_pages, finish_pages):
            pipeline.process(packages[1])
            pipeline.process(packages[2])
    finally:
        ReplicateService._copy_step = copy_step  # type: ignore[method-assign]
        control_sites.close()
    edge, old = probes["edge"], probes["control"]
    # Then with the deployed function no load mixed two cuts, the straddling ones included
    # (those begun at each switch, and loads the copies' threads had under way then)
    assert edge.unreachable == 0 and old.unreachable == 0
    assert len(edge.straddling) >= 2 * AT_EACH_SWITCH and len(edge.loads) > 4 * AT_EACH_SWITCH
    assert edge.mixed == []
    first = pipeline.versions_made(PROBED)[0]
    assert {load.version for load in edge.straddling} == {first, first + 1}
    # while the function before #23 gave the next cut's data to every load begun at a switch
    # (and mixed only loads that straddled one)
    assert len(old.mixed) >= 2 * AT_EACH_SWITCH
    assert all(load.straddled for load in old.mixed)
    assert all("resumen.json" in " ".join(load.mixed) for load in old.mixed)


def _across_a_switch(site, switch):
    """Chromium opens ``site``'s home page; the site holds everything the page loads until
    ``switch()`` has run; the DOM once the page's scripts are done."""
    page_loaded, switched = threading.Event(), threading.Event()

    def hold(path, headers):
        if "referer" in headers:  # what the page loads, not the page itself
            page_loaded.set()
            assert switched.wait(timeout=300), "the switch never came"

    shown = {}

    def open_page():
        shown["result"] = browser.open_page(site.url + "/", budget_ms=60_000, timeout=600)

    site.hold(hold)
    try:
        opener = threading.Thread(target=open_page)
        opener.start()
        assert page_loaded.wait(timeout=300), "Chromium never asked for what the page loads"
        switch()
        switched.set()
        opener.join()
    finally:
        site.hold(None)
        switched.set()
    return shown["result"].dom


def _resumen(pipeline, version):
    base = pipeline.sites[PROBED].url
    with urllib.request.urlopen(f"{base}/v/{version}/assets/JSON/DIP_LOC/resumen.json") as r:
        return json.loads(r.read())


def _shows(dom):
    corte = re.search(r'<p class="corte">Corte: ([^<]*)</p>', dom)
    actas = re.search(r"Actas registradas: (\d+) de (\d+)", dom)
    assert corte and actas, dom[-2000:]
    return corte[1], int(actas[1])


def test_chromium_opening_a_page_just_before_a_switch_shows_one_cut(pipeline, packages, chromium):
    pipeline.process(packages[0])
    first = pipeline.versions_made(PROBED)[0]
    control_sites, control = control_site(pipeline, PROBED, BEFORE_ISSUE_23)
    try:
        # Given Chromium on the function before #23, its page loaded just before a switch
        dom = _across_a_switch(control, lambda: pipeline.process(packages[1]))
    finally:
        control_sites.close()
    one, two = _resumen(pipeline, first), _resumen(pipeline, first + 1)
    assert one["actas_registradas"] != two["actas_registradas"]
    # Then it showed cut 1's page with cut 2's count: the mix #23 reports
    assert _shows(dom) == (one["corte"], two["actas_registradas"])
    # Given the deployed function, a page of the second cut opened just before the third's switch
    dom = _across_a_switch(pipeline.sites[PROBED], lambda: pipeline.process(packages[2]))
    # Then the page and its data are the second cut's, though the third was live before the
    # page's stylesheet, script and data were asked for
    assert pipeline.versions_made(PROBED)[-1] == first + 2
    assert _shows(dom) == (two["corte"], two["actas_registradas"])
