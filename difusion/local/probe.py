"""The torn-read probe: does a reader of a difusor's site ever see two cuts at once?

At each poll the reader follows the site's signed manifest to the version it is served from
(``/v/<N>/``), reads the manifest, its signature and a sample of the files it lists under
that version, and counts the poll as torn when the pair does not verify or a file does not
hash to the manifest it was read with. A version retired in the middle of a poll answers
with a redirect: counted as ``moved``, not torn (nothing mixed was served). Used by the
integration tier and ``make bench`` (docs/serving.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from difusion.adapters.public_site import HttpSiteReader
from difusion.continuity import SiteUnreachable, VersionMoved
from difusion.errors import ManifestInvalid, SignatureInvalid
from difusion.manifest import Manifest, sha256_hex
from difusion.publication import MANIFEST_PATH, SIGNATURE_PATH
from difusion.signing import PublicKey, verify


@dataclass
class Probe:
    """Polls one site; ``torn`` lists every poll that saw a mix of two versions."""

    url: str
    key: PublicKey
    sample: int = 12
    polls: list[tuple[int | None, int]] = field(default_factory=list)
    torn: list[str] = field(default_factory=list)
    moved: int = 0
    unreachable: int = 0
    reader: HttpSiteReader = field(default_factory=lambda: HttpSiteReader(10))

    def poll(self) -> None:
        try:
            self._poll()
        except VersionMoved:
            self.moved += 1
        except SiteUnreachable:
            self.unreachable += 1

    def _poll(self) -> None:
        base, version = self.reader.pin(self.url)
        manifest_bytes = self.reader.read(base, MANIFEST_PATH)
        signature = self.reader.read(base, SIGNATURE_PATH)
        try:
            verify(manifest_bytes, signature.decode("utf-8", "replace"), self.key)
            manifest = Manifest.from_bytes(manifest_bytes)
        except (SignatureInvalid, ManifestInvalid) as exc:
            self.torn.append(f"v{version}: the manifest and signature do not pair ({exc})")
            return
        listed = [f for f in manifest.files if f.path == "index.html"]
        listed += [f for f in manifest.files if f.path.endswith(".json")][: self.sample]
        for entry in listed:
            if sha256_hex(self.reader.read(base, entry.path)) != entry.sha256:
                self.torn.append(f"v{version}: {entry.path} is not #{manifest.sequence}'s")
        self.polls.append((version, manifest.sequence))

    def run_until(self, done: Callable[[], bool], limit: int = 20_000) -> threading.Thread:
        """Poll in a thread until ``done()`` (checked after each poll), or ``limit`` polls."""

        def keep_polling() -> None:
            while not done() and len(self.polls) + self.moved + self.unreachable < limit:
                self.poll()

        thread = threading.Thread(target=keep_polling, name="torn-read-probe", daemon=True)
        thread.start()
        return thread
