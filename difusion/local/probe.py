"""Probes of a difusor's site: does a visitor ever see two cuts at once?

``Probe``, the torn-read probe: at each poll a reader follows the site's signed manifest to
the version it is served from (``/v/<N>/``), reads the manifest, its signature and a sample
of the files it lists under that version, and counts the poll as torn when the pair does not
verify or a file does not hash to the manifest it was read with. A version retired in the
middle of a poll answers with a redirect: counted as ``moved``, not torn.

``PageLoads``, the page-load probe: loads a page as a browser does, by the URLs the
institute's site itself uses (absolute ones such as ``/assets/css/prep.css``): the page
(a navigation, redirected to ``/v/<N>/``), then its stylesheets and scripts, the data its
script fetches, a sección's data and the acta images that data names, each sent with the
page's URL as ``Referer`` and the ``Sec-Fetch-Mode`` Chromium sends, following redirects. A
load is **mixed** when anything it got is not what version N's signed manifest lists for
that path, or the data's ``corte`` is not the page's; it **straddled** a switch when the
site's live version was no longer N once it had finished. A load is two steps (``begin``,
``finish``) so that a test can put a switch between a page and what it loads.

Used by the integration tier and ``make bench`` (docs/serving.md).
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from difusion.adapters.pointer_store import KeyValueStorePointer
from difusion.adapters.public_site import HttpSiteReader
from difusion.continuity import NotServed, SiteUnreachable, VersionMoved
from difusion.errors import ManifestInvalid, SignatureInvalid
from difusion.manifest import Manifest, sha256_hex
from difusion.publication import MANIFEST_PATH, SIGNATURE_PATH
from difusion.signing import PublicKey, verify
from difusion.versions import Pointer

if TYPE_CHECKING:
    from difusion.local.pipeline import LocalPipeline
    from difusion.local.sites import LocalSite, LocalSites


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


# What Chromium sends for a navigation, and for what a page loads (Fetch metadata).
_NAVIGATION = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Sec-Fetch-Site": "none"}
_REDIRECTS = (301, 302, 303, 307, 308)
_VERSIONED = re.compile(r"^/v/(\d{1,15})(/.*)$")
_STYLESHEET = re.compile(r'<link[^>]*rel="stylesheet"[^>]*href="([^"]+)"')
_SCRIPT = re.compile(r'<script[^>]*src="([^"]+)"')
# The site's script fetches its data by a template naming the page's election.
_FETCH = re.compile(r"fetch\(`([^`]+)`")
_ELECTION = re.compile(r'<body[^>]*data-eleccion="([^"]+)"')
_CUT = re.compile(r'<p class="corte">Corte: ([^<]*)</p>')


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the probe follows them itself, keeping the Referer as a browser does


_OPENER = urllib.request.build_opener(_NoRedirects())


@dataclass(frozen=True)
class PageInProgress:
    """A page loaded (the navigation), its subresources not yet."""

    path: str
    url: str  # where the navigation landed: .../v/<N>/...
    version: int
    html: bytes


@dataclass(frozen=True)
class PageLoad:
    """One page and everything it loaded."""

    path: str
    version: int
    requests: int
    straddled: bool
    mixed: tuple[str, ...]


@dataclass
class PageLoads:
    """Loads pages of one site as a browser does; ``mixed`` lists every load that got two
    versions. ``pages``: the site's pages to load in turn; ``actas``: acta images per load."""

    url: str
    key: PublicKey
    pages: tuple[str, ...] = ("/", "/diputaciones.html", "/ayuntamientos.html")
    actas: int = 2
    seed: int = 0
    loads: list[PageLoad] = field(default_factory=list)
    unreachable: int = 0
    reader: HttpSiteReader = field(default_factory=lambda: HttpSiteReader(10))
    _manifests: dict[int, Manifest] = field(default_factory=dict)
    _random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    @property
    def mixed(self) -> list[PageLoad]:
        return [load for load in self.loads if load.mixed]

    @property
    def straddling(self) -> list[PageLoad]:
        return [load for load in self.loads if load.straddled]

    def load(self, path: str | None = None) -> None:
        """One page load, start to end (``path``: the next of ``pages`` by default)."""
        try:
            self.finish(self.begin(path))
        except (SiteUnreachable, NotServed, VersionMoved):
            self.unreachable += 1

    def begin(self, path: str | None = None) -> PageInProgress:
        """Navigate to ``path`` (no Referer: typed or bookmarked) and read the version it
        landed on's signed manifest, to check the load against once it is done."""
        path = path or self.pages[len(self.loads) % len(self.pages)]
        url, html, _ = self._get(self.url + path, _NAVIGATION)
        match = _VERSIONED.match(urllib.parse.urlsplit(url).path)
        if match is None:
            raise SiteUnreachable(f"{path} landed on {url}, outside any version")
        version = int(match.group(1))
        if version not in self._manifests:
            self._manifests[version] = self._manifest(version)
        return PageInProgress(path, url, version, html)

    def finish(self, page: PageInProgress) -> PageLoad:
        """Load what the page loads, check it against the page's version, and record it."""
        manifest = self._manifests[page.version]
        html = page.html.decode("utf-8", "replace")
        got: dict[str, bytes] = {}

        def load(reference: str, mode: str, dest: str) -> bytes:
            target = urllib.parse.urljoin(page.url, reference)
            headers = {"Referer": page.url, "Sec-Fetch-Mode": mode, "Sec-Fetch-Dest": dest}
            headers["Sec-Fetch-Site"] = "same-origin"
            _, data, _ = self._get(target, headers)
            got[_file_path(target)] = data
            return data

        scripts = [load(src, "no-cors", "script") for src in _SCRIPT.findall(html)]
        for href in _STYLESHEET.findall(html):
            load(href, "no-cors", "style")
        election = _ELECTION.search(html)
        for script in scripts:
            for template in _FETCH.findall(script.decode("utf-8", "replace")):
                if election is not None:
                    load(template.replace("${e}", election.group(1)), "cors", "empty")
        # a visitor opening a sección, and the acta images its data names
        secciones = [
            f.path
            for f in manifest.files
            if election is not None and f.path.startswith(f"assets/JSON/{election.group(1)}/secc")
        ]
        if secciones:
            data = load("/" + self._random.choice(sorted(secciones)), "cors", "empty")
            casillas = json.loads(data).get("casillas", [])
            for casilla in casillas[: self.actas]:
                load(casilla["acta"], "no-cors", "image")
        listed = manifest.files_by_path()
        mixed = [
            f"{path} is not version {page.version}'s (#{manifest.sequence})"
            for path, data in got.items()
            if path not in listed or sha256_hex(data) != listed[path].sha256
        ]
        cut = _CUT.search(html)
        for path, data in got.items():
            if path.endswith("/resumen.json") and cut is not None:
                corte = json.loads(data).get("corte")
                if corte != cut.group(1):
                    mixed.append(f"the page says Corte: {cut.group(1)}, {path} says {corte}")
        _, live = self.reader.pin(self.url)
        result = PageLoad(page.path, page.version, len(got) + 1, live != page.version, tuple(mixed))
        self.loads.append(result)
        return result

    def run_until(self, done: Callable[[], bool], limit: int = 20_000) -> threading.Thread:
        """Load pages in a thread until ``done()`` (checked after each), or ``limit`` loads."""

        def keep_loading() -> None:
            while not done() and len(self.loads) + self.unreachable < limit:
                self.load()

        thread = threading.Thread(target=keep_loading, name="page-load-probe", daemon=True)
        thread.start()
        return thread

    def _manifest(self, version: int) -> Manifest:
        base = f"{self.url}/v/{version}"
        manifest_bytes = self.reader.read(base, MANIFEST_PATH)
        signature = self.reader.read(base, SIGNATURE_PATH)
        verify(manifest_bytes, signature.decode("utf-8", "replace"), self.key)
        return Manifest.from_bytes(manifest_bytes)

    def _get(self, url: str, headers: dict[str, str]) -> tuple[str, bytes, int]:
        """GET ``url`` following redirects on the same site: (final URL, body, hops)."""
        origin = urllib.parse.urlsplit(self.url)
        for hops in range(4):
            request = urllib.request.Request(url, headers=headers)
            try:
                with _OPENER.open(request, timeout=10) as response:
                    return url, response.read(), hops
            except urllib.error.HTTPError as exc:
                location = exc.headers.get("Location")
                if exc.code not in _REDIRECTS or not location:
                    if exc.code == 404:
                        raise NotServed(f"HTTP 404 for {url}") from None
                    raise SiteUnreachable(f"HTTP {exc.code} for {url}") from None
                url = urllib.parse.urljoin(url, location)
                if urllib.parse.urlsplit(url).netloc != origin.netloc:
                    raise SiteUnreachable(f"redirected off the site, to {url}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                raise SiteUnreachable(f"{url}: {getattr(exc, 'reason', exc)}") from None
        raise SiteUnreachable(f"{url}: more than 3 redirects")


def _file_path(url: str) -> str:
    """The site file a URL names: its path without the version prefix or leading slash."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    match = _VERSIONED.match(path)
    path = match.group(2) if match else path
    return path.lstrip("/") + ("index.html" if path.endswith("/") else "")


@contextlib.contextmanager
def at_switches(
    kvs_arn: str, before: Callable[[], Any], after: Callable[[Any], None]
) -> Iterator[None]:
    """While inside, every switch of the store ``kvs_arn`` (a pointer write that changes the
    live version of a site that had one) calls ``before()`` just before the write and
    ``after(what before returned)`` just after it: page loads begun before and finished after
    straddle that switch, every time, whatever the machine's speed."""
    write = KeyValueStorePointer.write

    def write_around(self: KeyValueStorePointer, pointer: Pointer, if_match: str) -> str:
        current = self.read().pointer if self.arn == kvs_arn else None
        switching = (
            current is not None
            and current.live is not None
            and pointer.live is not None
            and pointer.live.version != current.live.version
        )
        begun = before() if switching else None
        etag = write(self, pointer, if_match)
        if switching:
            after(begun)
        return etag

    KeyValueStorePointer.write = write_around  # type: ignore[method-assign]
    try:
        yield
    finally:
        KeyValueStorePointer.write = write  # type: ignore[method-assign]


def control_site(
    pipeline: LocalPipeline, difusor_id: str, function: Path
) -> tuple[LocalSites, LocalSite]:
    """The difusor's site as its distribution would serve it with another viewer-request
    function (a control: the function before #23), over the same bucket and pointer. Close
    the returned sites when done."""
    from difusion.local.emulator import REGION
    from difusion.local.provision import account_session
    from difusion.local.sites import LocalSites

    difusor = pipeline.difusor(difusor_id)
    session = account_session(difusor.account_id)
    sites = LocalSites(function)
    kvs = session.client("cloudfront-keyvaluestore", region_name=REGION)
    site = sites.serve("control", session.client("s3"), difusor.bucket, kvs=(kvs, difusor.kvs_arn))
    return sites, site
