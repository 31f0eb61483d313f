"""Reads a difusor's public site over HTTPS, as a member of the public would."""

from __future__ import annotations

import ipaddress
import urllib.error
import urllib.parse
import urllib.request

from difusion.continuity import NotServed, SiteUnreachable

USER_AGENT = "difusion-continuity-monitor/1"
_MAX_BODY = 512 * 1024 * 1024


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

    def read(self, base_url: str, path: str) -> bytes:
        try:
            url = site_url(base_url, path)
        except ValueError as exc:
            raise SiteUnreachable(str(exc)) from None
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                body: bytes = response.read(_MAX_BODY + 1)
        except urllib.error.HTTPError as exc:
            if exc.code in (403, 404, 410):
                raise NotServed(f"HTTP {exc.code} for {path}") from None
            raise SiteUnreachable(f"HTTP {exc.code} for {path}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SiteUnreachable(f"{url}: {reason}") from None
        if len(body) > _MAX_BODY:
            raise SiteUnreachable(f"{path} is larger than {_MAX_BODY} bytes")
        return body
