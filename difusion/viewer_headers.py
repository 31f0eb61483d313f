"""The headers a difusor's distribution adds to what it serves viewers: its response headers
policy, as one value the difusor stack deploys and the embedded default's sites apply.

- ``Cache-Control: no-cache``: browsers revalidate every load (docs/serving.md, part 3).
- CORS for the institute's portal only: its verifier (``verificador.html``) reads the site's
  manifest, signature and files from the portal's origin. A ``GET`` whose ``Origin`` is the
  portal gets ``Access-Control-Allow-Origin`` with that origin; any other origin gets no CORS
  header, so a browser keeps the response from the page that asked. Methods ``GET`` and
  ``HEAD`` only; no credentials; nothing exposed beyond the CORS-safelisted headers.

The viewer-request function's own answers (a redirect to the live version, a 400, a 503) say
``Access-Control-Allow-Origin: *`` themselves (``edge/viewer_request.js``): AWS does not
document whether a response headers policy applies to them (docs/serving.md 2.6).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CACHE_CONTROL = "no-cache"
CORS_METHODS = ("GET", "HEAD")
# CloudFormation requires at least one allowed header; they are only sent in answers to
# preflights, which this distribution never makes (it allows GET and HEAD only). "Accept" is
# CORS-safelisted: listing it allows nothing a simple request could not already send.
CORS_ALLOW_HEADERS = ("Accept",)
CORS_MAX_AGE_SECONDS = 600

_ORIGIN = re.compile(
    r"^https://[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+(:\d{1,5})?$"
)
_LOOPBACK_ORIGIN = re.compile(r"^http://(127\.0\.0\.1|localhost)(:\d{1,5})?$")


class OriginInvalid(ValueError):
    """Not a web origin the portal can be served from."""


def portal_origin(value: str, *, loopback: bool = False) -> str:
    """``value`` as an origin: ``https://host[:port]``, lower case, no path. Plain
    ``http`` only on loopback, and only where ``loopback`` allows it (the embedded default)."""
    origin = str(value).strip().rstrip("/").lower()
    # a browser's Origin header never names the scheme's default port
    origin = origin.removesuffix(":443") if origin.startswith("https://") else origin
    if _ORIGIN.match(origin) or (loopback and _LOOPBACK_ORIGIN.match(origin)):
        return origin
    raise OriginInvalid(
        f"{value!r} is not an origin such as https://prep.ieebcs.org.mx (scheme and host, no path)"
    )


@dataclass(frozen=True)
class ViewerHeaders:
    """The response headers policy of a difusor's distribution."""

    cors_origins: tuple[str, ...]
    cache_control: str = CACHE_CONTROL

    def for_response(self, request_origin: str | None) -> dict[str, str]:
        """What the policy adds to a response served from the cache or the bucket, for a
        request whose ``Origin`` header is ``request_origin``."""
        headers = {"Cache-Control": self.cache_control}
        if request_origin is not None and request_origin in self.cors_origins:
            headers["Access-Control-Allow-Origin"] = request_origin
        return headers
