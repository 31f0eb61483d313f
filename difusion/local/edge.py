"""The difusores' viewer-request function, run as CloudFront runs it, for the embedded default.

``edge/viewer_request.js`` is the file the difusor stack deploys. Here it runs in a Node
process (``edge/sidecar.mjs``, through the same harness its ``node --test`` tests use), and
this class hands it one viewer request at a time with the pointer the store holds: the local
sites server routes by exactly the code CloudFront runs.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EDGE_DIR = Path(__file__).resolve().parents[2] / "edge"
SIDECAR = EDGE_DIR / "sidecar.mjs"
VIEWER_REQUEST = EDGE_DIR / "viewer_request.js"
# The function as it was before issue #23 (every absolute URL to the live version): the control
# the page-load probe must catch mixing pages.
BEFORE_ISSUE_23 = EDGE_DIR / "fixtures" / "viewer_request.before-issue-23.js"


class EdgeFunctionError(RuntimeError):
    """The function threw, or its process is gone: CloudFront answers 5xx then."""


@dataclass(frozen=True)
class OriginRequest:
    """The function let the request through, rewritten: what the cache and origin see."""

    uri: str
    querystring: dict[str, Any]

    @property
    def cache_key(self) -> str:
        """The URI and the query string the cache policy lists (only ``v``)."""
        version = self.querystring.get("v", {}).get("value", "")
        return f"{self.uri}?v={version}"


@dataclass(frozen=True)
class EdgeResponse:
    """The function answered by itself (a redirect, 400, 503, or the propagation probe's 200)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""


def viewer_event(
    uri: str, query: str = "", headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A viewer-request event as CloudFront builds it: the URI and query string as sent, the
    viewer's headers under lowercase names."""
    querystring: dict[str, Any] = {}
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        entry = {"value": value}
        if name in querystring:
            existing = querystring[name]
            existing.setdefault("multiValue", [{"value": existing["value"]}]).append(entry)
        else:
            querystring[name] = dict(entry)
    return {
        "version": "1.0",
        "context": {"eventType": "viewer-request"},
        "viewer": {"ip": "127.0.0.1"},
        "request": {
            "method": "GET",
            "uri": uri,
            "querystring": querystring,
            "headers": {name.lower(): {"value": value} for name, value in (headers or {}).items()},
            "cookies": {},
        },
    }


class EdgeFunction:
    """One Node process running the function; safe to share between threads."""

    def __init__(self, function: Path = VIEWER_REQUEST, sidecar: Path = SIDECAR) -> None:
        node = shutil.which("node")
        if node is None:
            raise EdgeFunctionError("node is not installed: the edge function runs on Node")
        self.function = function
        self._process = subprocess.Popen(
            [node, str(sidecar), str(function)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def route(
        self,
        pointer: str | None,
        uri: str,
        query: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> OriginRequest | EdgeResponse:
        """What the function does with a viewer's ``uri?query`` (and ``headers``) when the
        store holds ``pointer`` (``None``: no pointer)."""
        event = viewer_event(uri, query, headers)
        message = {"id": next(self._ids), "pointer": pointer, "event": event}
        with self._lock:
            stdin, stdout = self._process.stdin, self._process.stdout
            if stdin is None or stdout is None or self._process.poll() is not None:
                raise EdgeFunctionError("the edge function's process has exited")
            stdin.write(json.dumps(message) + "\n")
            stdin.flush()
            line = stdout.readline()
        if not line:
            raise EdgeFunctionError("the edge function's process has exited")
        answer = json.loads(line)
        if answer.get("id") != message["id"]:
            raise EdgeFunctionError(f"answer {answer.get('id')} to request {message['id']}")
        if "error" in answer:
            raise EdgeFunctionError(f"the edge function threw: {answer['error']}")
        result = answer["result"]
        if "statusCode" in result:
            headers = {name: h["value"] for name, h in result.get("headers", {}).items()}
            return EdgeResponse(int(result["statusCode"]), headers, _body(result.get("body")))
        return OriginRequest(result["uri"], result.get("querystring", {}))

    def close(self) -> None:
        if self._process.poll() is None:
            if self._process.stdin is not None:
                self._process.stdin.close()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> EdgeFunction:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _body(body: Any) -> bytes:
    """A generated response's body, ``{"encoding": "text" | "base64", "data"}``."""
    if not body:
        return b""
    if body.get("encoding") == "base64":
        return base64.b64decode(body["data"])
    return str(body["data"]).encode("utf-8")
