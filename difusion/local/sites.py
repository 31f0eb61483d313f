"""Each difusor's site over HTTP on 127.0.0.1, the way its CloudFront distribution serves it.

CloudFront runs the difusor's viewer-request function on every request, with the version
pointer from its KeyValueStore (``docs/serving.md``), and then reads the origin key the
function chose from the difusor's bucket with origin access control. This server does the
same: the function is ``edge/viewer_request.js`` itself (``difusion.local.edge``), the pointer
is read through the KeyValueStore API (the embedded default's data plane), and the object
from the emulator's bucket. A response carries the object's ``Content-Type``, ``ETag`` and
``Last-Modified``, plus what the difusor's response headers policy adds
(``difusion.viewer_headers``: ``Cache-Control: no-cache``, and CORS for the institute's portal
only; the stack's ``Referrer-Policy``), and a conditional request whose ETag still matches gets
``304``. The function sees the viewer's headers (a page's ``Referer`` pins what it loads to its
version). The function's own
answers carry only the headers it sets. The institute's portal has
no function: its keys are served as they are. A site can be taken down (its port refuses
connections) and brought back, to play an outage.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from difusion.local.edge import VIEWER_REQUEST, EdgeFunction, EdgeResponse, OriginRequest
from difusion.versions import POINTER_KEY
from difusion.viewer_headers import CACHE_CONTROL, ViewerHeaders

S3ClientFactory = Callable[[], Any]
# What a difusor's edge does with a request: (path, query, viewer headers) -> origin request
# or response.
Router = Callable[[str, str, Mapping[str, str]], OriginRequest | EdgeResponse]
# Called with each request's path and headers before it is served (tests hold a request here
# to put a switch between a page and what it loads).
Gate = Callable[[str, Mapping[str, str]], None]
# The difusor stack's response headers policy sets it (stacks/difusor/site_distribution.py); it
# is also browsers' default: a same-origin request carries the page's full URL as Referer.
REFERRER_POLICY = "strict-origin-when-cross-origin"


@dataclass
class EdgeCache:
    """CloudFront's cache for one site, as the difusor's cache policy keys it (the routed
    URI and the query string ``v``): in ``versioned`` mode an entry is kept (a version's
    files never change while it is routed), in ``revalidate`` mode every request goes to the
    bucket. ``viewer_requests`` and ``origin_gets`` give the edge-to-origin ratio."""

    mode: str = "versioned"
    entries: dict[str, tuple[bytes, dict[str, str]]] = field(default_factory=dict)
    viewer_requests: int = 0
    origin_gets: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def lookup(self, key: str) -> tuple[bytes, dict[str, str]] | None:
        with self.lock:
            self.viewer_requests += 1
            return self.entries.get(key) if self.mode == "versioned" else None

    def store(self, key: str, data: bytes, headers: dict[str, str]) -> None:
        with self.lock:
            self.origin_gets += 1
            if self.mode == "versioned":
                self.entries[key] = (data, headers)

    def invalidate(self) -> int:
        """``/*``: every entry dropped (what the difusor, who owns the distribution, can
        do); how many there were."""
        with self.lock:
            dropped = len(self.entries)
            self.entries.clear()
            return dropped


@dataclass
class _Origin:
    s3: Any
    bucket: str
    prefix: str
    router: Router | None = None
    cache: EdgeCache | None = None
    viewer: ViewerHeaders | None = None
    gate: Gate | None = None


def edge_router(edge: EdgeFunction, kvs: Any, kvs_arn: str) -> Router:
    """Route as the difusor's distribution does: the function, with the store's pointer."""

    def route(path: str, query: str, headers: Mapping[str, str]) -> OriginRequest | EdgeResponse:
        try:
            pointer: str | None = kvs.get_key(KvsARN=kvs_arn, Key=POINTER_KEY)["Value"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            pointer = None
        return edge.route(pointer, path, query, headers)

    return route


def _handler_for(origin: _Origin) -> type[BaseHTTPRequestHandler]:
    class SiteHandler(BaseHTTPRequestHandler):
        server_version = "difusion-local-cdn"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the emulator's log has the S3 side; keep the console quiet

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _policy(self) -> dict[str, str]:
            """What the response headers policy adds to a response from cache or origin."""
            if origin.viewer is None:
                return {"Cache-Control": CACHE_CONTROL}
            policy = origin.viewer.for_response(self.headers.get("Origin"))
            return {**policy, "Referrer-Policy": REFERRER_POLICY}

        def _serve(self, body: bool) -> None:
            url = urllib.parse.urlsplit(self.path)
            # CloudFront hands a viewer-request function the viewer's headers, names lowercase
            viewer = {name.lower(): value for name, value in self.headers.items()}
            if origin.gate is not None:
                origin.gate(url.path, viewer)
            cache_key = None
            if origin.router is not None:
                try:
                    routed = origin.router(url.path, url.query, viewer)
                except Exception as exc:  # the function threw or the store failed: a 5xx
                    self._reply(503, f"edge: {exc}".encode(), body)
                    return
                if isinstance(routed, EdgeResponse):
                    headers = {"Content-Type": "text/plain", **routed.headers}
                    self._reply(routed.status, routed.body, body, headers)
                    return
                path = urllib.parse.unquote(routed.uri).lstrip("/")
                cache_key = routed.cache_key
                if origin.cache is not None:
                    cached = origin.cache.lookup(cache_key)
                    if cached is not None:
                        self._answer(
                            cached[0],
                            {**cached[1], **self._policy(), "X-Cache": "Hit from local-cdn"},
                            body,
                        )
                        return
            else:
                path = urllib.parse.unquote(url.path).lstrip("/")
                if path == "" or path.endswith("/"):
                    path += "index.html"
            try:
                obj = origin.s3.get_object(Bucket=origin.bucket, Key=origin.prefix + path)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = 404 if code in ("NoSuchKey", "404", "NoSuchBucket") else 502
                self._reply(
                    status,
                    b"Not Found" if status == 404 else b"Bad Gateway",
                    body,
                    {"Content-Type": "text/plain", **self._policy()},
                )
                return
            data = obj["Body"].read()
            headers = {
                "Content-Type": obj.get("ContentType", "application/octet-stream"),
                "ETag": obj.get("ETag", ""),
                "Last-Modified": obj["LastModified"].strftime("%a, %d %b %Y %H:%M:%S GMT"),
            }
            if cache_key is not None and origin.cache is not None:
                origin.cache.store(cache_key, data, headers)
            self._answer(
                data, {**headers, **self._policy(), "X-Cache": "Miss from local-cdn"}, body
            )

        def _answer(self, data: bytes, headers: dict[str, str], body: bool) -> None:
            """The object, or ``304`` to a viewer whose copy's ETag still matches."""
            etag = headers.get("ETag", "")
            if etag and self.headers.get("If-None-Match") == etag:
                self._reply(304, b"", False, headers)
                return
            self._reply(200, data, body, headers)

        def _reply(
            self, status: int, data: bytes, body: bool, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            for name, value in (headers or {"Content-Type": "text/plain"}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)) if status != 304 else "0")
            self.end_headers()
            if body and status != 304:
                self.wfile.write(data)

    return SiteHandler


class LocalSite:
    """One site on one loopback port; the port stays the same across take-down/bring-up."""

    def __init__(
        self,
        name: str,
        s3: Any,
        bucket: str,
        prefix: str = "",
        router: Router | None = None,
        cache: EdgeCache | None = None,
        viewer: ViewerHeaders | None = None,
    ) -> None:
        self.name = name
        self.cache = cache
        self._origin = _Origin(s3, bucket, prefix, router, cache, viewer)
        self._handler = _handler_for(self._origin)
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.bring_up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hold(self, gate: Gate | None) -> None:
        """Call ``gate(path, headers)`` before serving each request (``None``: stop)."""
        self._origin.gate = gate

    @property
    def up(self) -> bool:
        return self._server is not None

    def bring_up(self) -> None:
        if self._server is not None:
            return
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, name=f"site-{self.name}", daemon=True).start()
        self._server = server

    def take_down(self) -> None:
        """Stop answering: connections to the port are refused, as for a site that is down."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None


class LocalSites:
    """The difusores' sites and the institute's portal, by name."""

    def __init__(self, function: Path = VIEWER_REQUEST) -> None:
        """``function``: the viewer-request function the difusores' sites run (a control may
        run another file)."""
        self.sites: dict[str, LocalSite] = {}
        self.function = function
        self._edge: EdgeFunction | None = None

    def serve(
        self,
        name: str,
        s3: Any,
        bucket: str,
        prefix: str = "",
        kvs: tuple[Any, str] | None = None,
        cache_mode: str = "versioned",
        viewer: ViewerHeaders | None = None,
    ) -> LocalSite:
        """Serve ``bucket`` as site ``name``; with ``kvs`` (a KeyValueStore client and the
        store's ARN) through the difusores' edge function and a cache in ``cache_mode``, and
        with ``viewer`` (its response headers policy), as its distribution does."""
        router = None
        cache = None
        if kvs is not None:
            if self._edge is None:
                self._edge = EdgeFunction(self.function)
            router = edge_router(self._edge, *kvs)
            cache = EdgeCache(cache_mode)
        site = LocalSite(name, s3, bucket, prefix, router, cache, viewer)
        self.sites[name] = site
        return site

    def __getitem__(self, name: str) -> LocalSite:
        return self.sites[name]

    def close(self) -> None:
        for site in self.sites.values():
            site.take_down()
        self.sites.clear()
        if self._edge is not None:
            self._edge.close()
            self._edge = None
