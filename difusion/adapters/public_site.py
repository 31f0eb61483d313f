"""Reads a difusor's public site over HTTPS, as a member of the public would: one version.

A difusor's edge redirects every unversioned URL to the live version (``/v/<N>/…``,
``docs/serving.md``). A reader pins the version the signed manifest redirects to and reads
everything else under it without following redirects: a redirect there means the version
stopped being routed mid-read, which the caller hears as :class:`VersionMoved`.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.error
import urllib.parse
import urllib.request

from difusion.continuity import NotServed, SiteUnreachable, VersionMoved
from difusion.publication import MANIFEST_PATH

USER_AGENT = "difusion-continuity-monitor/1"
_MAX_BODY = 512 * 1024 * 1024
_VERSIONED = re.compile(r"^/v/(\d{1,15})/")
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_HOPS = 3


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the 3xx reaches the caller as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirects())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def site_url(base_url: str, path: str) -> str:
    """``path`` (a manifest path, never absolute) under ``base_url``."""
    parsed = urllib.parse.urlsplit(base_url)
    if parsed.scheme != "https" and not (
        parsed.scheme == "http" and is_loopback(parsed.hostname or "")
    ):
        raise ValueError(f"{base_url}: sites are read over https (plain http only on loopback)")
    return base_url.rstrip("/") + "/" + urllib.parse.quote(path)


class HttpSiteReader:
    """GETs with a timeout; no cache of its own, so it sees what the public sees."""

    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self._timeout = timeout_seconds

    def pin(self, base_url: str) -> tuple[str, int | None]:
        """Follow the signed manifest's redirects (a few hops, on the same site) to the
        version it is served from: that version's base URL and number. A site without
        versions answers in place: its own base URL and ``None``."""
        try:
            url = site_url(base_url, MANIFEST_PATH)
        except ValueError as exc:
            raise SiteUnreachable(str(exc)) from None
        origin = urllib.parse.urlsplit(url)
        for _ in range(_MAX_HOPS):
            location = self._location(url)
            if location is None:
                break
            target = urllib.parse.urlsplit(urllib.parse.urljoin(url, location))
            if (target.scheme, target.netloc) != (origin.scheme, origin.netloc):
                raise SiteUnreachable(f"{url} redirects off the site, to {location}")
            url = urllib.parse.urlunsplit(target)
        else:
            raise SiteUnreachable(f"{base_url}: more than {_MAX_HOPS} redirects")
        path = urllib.parse.urlsplit(url).path
        match = _VERSIONED.match(path)
        if match is None:
            return base_url, None
        return f"{origin.scheme}://{origin.netloc}/v/{match.group(1)}", int(match.group(1))

    def _location(self, url: str) -> str | None:
        """Where ``url`` redirects to, or ``None`` when it does not (HEAD, no body)."""
        request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": USER_AGENT})
        try:
            with _OPENER.open(request, timeout=self._timeout):
                return None
        except urllib.error.HTTPError as exc:
            if exc.code in _REDIRECTS and exc.headers.get("Location"):
                return str(exc.headers["Location"])
            if exc.code in (403, 404, 410):
                return None  # the GET that follows says what is missing
            raise SiteUnreachable(f"HTTP {exc.code} for {url}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            raise SiteUnreachable(f"{url}: {getattr(exc, 'reason', exc)}") from None

    def read(self, base_url: str, path: str) -> bytes:
        try:
            url = site_url(base_url, path)
        except ValueError as exc:
            raise SiteUnreachable(str(exc)) from None
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        try:
            with _OPENER.open(request, timeout=self._timeout) as response:
                body: bytes = response.read(_MAX_BODY + 1)
        except urllib.error.HTTPError as exc:
            if exc.code in _REDIRECTS:
                raise VersionMoved(
                    f"{path} redirected to {exc.headers.get('Location')}: the version read "
                    "is no longer routed"
                ) from None
            if exc.code in (403, 404, 410):
                raise NotServed(f"HTTP {exc.code} for {path}") from None
            raise SiteUnreachable(f"HTTP {exc.code} for {path}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SiteUnreachable(f"{url}: {reason}") from None
        if len(body) > _MAX_BODY:
            raise SiteUnreachable(f"{path} is larger than {_MAX_BODY} bytes")
        return body
