"""Whole versions (docs/serving.md): a reader of a difusor's site never sees two cuts at once.

The torn-read probe: at each poll a reader follows the site's signed manifest to the version
it is served from, reads the manifest, its signature and files under that version, and
counts any poll where the pair does not verify or a file does not hash to the manifest it
was read with. The sites are served by the local sites server running the difusores' edge
function itself, with the pointer read from the KeyValueStore data plane.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from difusion.adapters.public_site import HttpSiteReader
from difusion.continuity import VersionMoved
from difusion.errors import SignatureInvalid
from difusion.manifest import Manifest, sha256_hex
from difusion.publication import MANIFEST_PATH, SIGNATURE_PATH
from difusion.services.replicate import ReplicateService
from difusion.signing import verify

pytestmark = pytest.mark.integration
PROBED = "uabcs"


@dataclass
class Probe:
    """Polls one site; ``torn`` lists every poll that saw a mix of two versions."""

    url: str
    key: object
    sample: int = 12
    polls: list[tuple[int | None, int]] = field(default_factory=list)
    torn: list[str] = field(default_factory=list)
    moved: int = 0
    reader: HttpSiteReader = field(default_factory=lambda: HttpSiteReader(10))

    def poll(self) -> None:
        base, version = self.reader.pin(self.url)
        try:
            manifest_bytes = self.reader.read(base, MANIFEST_PATH)
            signature = self.reader.read(base, SIGNATURE_PATH)
        except VersionMoved:
            self.moved += 1  # the version read was retired mid-poll: redirected, not mixed
            return
        try:
            verify(manifest_bytes, signature.decode(), self.key)  # type: ignore[arg-type]
        except SignatureInvalid as exc:
            self.torn.append(f"v{version}: the manifest and signature do not pair ({exc})")
            return
        manifest = Manifest.from_bytes(manifest_bytes)
        listed = [f for f in manifest.files if f.path == "index.html"]
        listed += [f for f in manifest.files if f.path.endswith(".json")][: self.sample]
        for entry in listed:
            try:
                body = self.reader.read(base, entry.path)
            except VersionMoved:
                self.moved += 1
                return
            if sha256_hex(body) != entry.sha256:
                self.torn.append(f"v{version}: {entry.path} is not #{manifest.sequence}'s")
        self.polls.append((version, manifest.sequence))


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
    # Then every poll made while the new version was being written saw cut 2, whole
    assert copies["n"] >= 10 and len(probe.polls) >= 2
    assert probe.torn == []
    assert {sequence for _, sequence in probe.polls} == {2}
    assert {version for version, _ in probe.polls} == {2}
    # And once it is switched, the site is cut 3 as version 3
    probe.poll()
    assert probe.polls[-1] == (3, 3) and probe.torn == []


def test_a_reader_polling_while_cuts_are_published_never_sees_two_at_once(pipeline, packages):
    pipeline.process(packages[0])
    probe = Probe(pipeline.sites[PROBED].url, pipeline.secret_key.public_key, sample=4)
    done = threading.Event()

    def keep_polling() -> None:
        # until the last cut has been seen, whatever the machine's speed (bounded in polls,
        # not in time, should it never come)
        while not (done.is_set() and probe.polls and probe.polls[-1][1] == 3):
            probe.poll()
            if len(probe.polls) + probe.moved > 20_000:
                break

    poller = threading.Thread(target=keep_polling, name="torn-read-probe")
    poller.start()
    pipeline.process(packages[1])
    pipeline.process(packages[2])
    done.set()
    poller.join()
    # Then no poll saw a mix, and what the polls saw only went forward
    assert probe.torn == []
    versions = [version for version, _ in probe.polls]
    assert versions == sorted(versions) and versions[0] == 1 and versions[-1] == 3
    sequences = [sequence for _, sequence in probe.polls]
    assert sequences == sorted(sequences)
