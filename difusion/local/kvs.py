"""CloudFront KeyValueStore's data plane for the embedded default (moto has the control plane).

The stores are the ones created in moto (``CreateKeyValueStore``); their keys live here, in
the emulator's process, beside moto's state. The API is the documented one
(https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_Operations_Amazon_CloudFront_KeyValueStore.html):
``DescribeKeyValueStore``, ``GetKey`` and ``PutKey`` with a required ``If-Match`` that must
be the store's current ``ETag`` (else ``ConflictException``, 409), every write giving the
store a new ``ETag``; a missing key is ``ResourceNotFoundException``; keys of at most 512
bytes, values of at most 1 KB, a store of at most 5 MB (the quotas page).

The SDK sends data-plane calls to ``https://<account>.cloudfront-kvs.global.api.aws``; an
endpoint override gets the account prefixed to its host the same way, so no loopback address
can be named. The embedded default therefore names a host that does not resolve
(``cloudfront-kvs.embedded.invalid``) and sets ``HTTP_PROXY`` to this server, which answers
for that host and forwards nothing anywhere (``NO_PROXY`` keeps every other call direct).
The SDK signs with SigV4A as on AWS (``botocore[crt]``); like moto, this does not check it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST_SUFFIX = "cloudfront-kvs.embedded.invalid"
PORT_VARIABLE = "DIFUSION_KVS_PORT"  # where the emulator's process serves it
WRITES = "\x00writes"  # the inspection route's marker (no key can be it: keys are printable)
MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 1024
MAX_STORE_BYTES = 5 * 1024 * 1024


class _StoreError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class KeyValueData:
    """The keys of every store, by ARN; the ARN must name a store moto knows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, dict[str, str]] = {}
        self._etags: dict[str, str] = {}
        self._created: dict[str, float] = {}
        self._writes: dict[str, list[dict[str, str]]] = {}  # every PutKey, for inspection
        self._calls: dict[str, dict[str, int]] = {}  # requests per operation, for the bench

    def _known(self, arn: str) -> None:
        from moto.cloudfront.models import cloudfront_backends

        parts = arn.split(":")
        if len(parts) != 6 or parts[2] != "cloudfront" or "/" not in parts[5]:
            raise _StoreError(400, "ValidationException", f"{arn} is not a key value store ARN")
        account = parts[4]
        try:
            stores = list(cloudfront_backends[account]["aws"].key_value_stores.values())
        except KeyError:
            stores = []
        if not any(store.arn == arn for store in stores):
            raise _StoreError(404, "ResourceNotFoundException", f"no key value store {arn}")
        if arn not in self._etags:
            self._items[arn] = {}
            self._etags[arn] = uuid.uuid4().hex.upper()[:14]
            self._created[arn] = time.time()

    def _summary(self, arn: str) -> dict[str, Any]:
        items = self._items[arn]
        return {
            "ItemCount": len(items),
            "TotalSizeInBytes": sum(len(k.encode()) + len(v.encode()) for k, v in items.items()),
        }

    def _count(self, arn: str, operation: str) -> None:
        calls = self._calls.setdefault(arn, {})
        calls[operation] = calls.get(operation, 0) + 1

    def describe(self, arn: str) -> tuple[dict[str, Any], str]:
        with self._lock:
            self._known(arn)
            self._count(arn, "DescribeKeyValueStore")
            body = {
                **self._summary(arn),
                "KvsARN": arn,
                "Created": self._created[arn],
                "Status": "READY",
            }
            return body, self._etags[arn]

    def get(self, arn: str, key: str) -> dict[str, Any]:
        with self._lock:
            self._known(arn)
            self._count(arn, "GetKey")
            items = self._items[arn]
            if key not in items:
                raise _StoreError(404, "ResourceNotFoundException", f"key {key} not found")
            return {"Key": key, "Value": items[key], **self._summary(arn)}

    def put(self, arn: str, key: str, value: str, if_match: str) -> tuple[dict[str, Any], str]:
        with self._lock:
            self._known(arn)
            self._count(arn, "PutKey")
            if not 0 < len(key.encode()) <= MAX_KEY_BYTES:
                raise _StoreError(400, "ValidationException", "keys are 1 to 512 bytes")
            if len(value.encode()) > MAX_VALUE_BYTES:
                raise _StoreError(400, "ValidationException", "values are at most 1 KB")
            if if_match != self._etags[arn]:
                raise _StoreError(409, "ConflictException", "Resource is not in expected state")
            items = dict(self._items[arn])
            items[key] = value
            size = sum(len(k.encode()) + len(v.encode()) for k, v in items.items())
            if size > MAX_STORE_BYTES:
                raise _StoreError(402, "ServiceQuotaExceededException", "store over 5 MB")
            self._items[arn] = items
            self._etags[arn] = uuid.uuid4().hex.upper()[:14]
            self._writes.setdefault(arn, []).append({"Key": key, "Value": value})
            return self._summary(arn), self._etags[arn]

    def writes(self, arn: str) -> dict[str, Any]:
        """Every write the store took, oldest first: the embedded default's inspection
        (an auditor's view of the pointer's history; no AWS API gives it)."""
        with self._lock:
            self._known(arn)
            return {
                "Writes": list(self._writes.get(arn, [])),
                "Requests": dict(self._calls.get(arn, {})),
            }


def _handler_for(data: KeyValueData) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._answer("GET")

        def do_PUT(self) -> None:
            self._answer("PUT")

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                arn, key = self._route()
                if method == "GET" and key == WRITES:
                    result, etag = data.writes(arn), ""
                elif method == "GET" and key is None:
                    result, etag = data.describe(arn)
                elif method == "GET" and key is not None:
                    result, etag = data.get(arn, key), ""
                elif method == "PUT" and key is not None:
                    value = json.loads(body or b"{}").get("Value")
                    if not isinstance(value, str):
                        raise _StoreError(400, "ValidationException", "Value is required")
                    if_match = self.headers.get("If-Match")
                    if not if_match:
                        raise _StoreError(400, "ValidationException", "If-Match is required")
                    result, etag = data.put(arn, key, value, if_match)
                else:
                    raise _StoreError(404, "UnknownOperationException", f"{method} {self.path}")
            except _StoreError as exc:
                self._send(exc.status, {"message": str(exc)}, {"x-amzn-ErrorType": exc.code})
                return
            self._send(200, result, {"ETag": etag} if etag else {})

        def _route(self) -> tuple[str, str | None]:
            url = urllib.parse.urlsplit(self.path)
            if not (url.hostname or "").endswith("." + HOST_SUFFIX):
                # A proxy that forwards nothing: only the emulated data plane answers here.
                raise _StoreError(502, "BadGateway", f"{url.hostname} is not reachable here")
            prefix = "/key-value-stores/"
            if not url.path.startswith(prefix):
                raise _StoreError(404, "UnknownOperationException", url.path)
            rest = url.path[len(prefix) :].split("/")
            arn = urllib.parse.unquote(rest[0])
            if len(rest) == 1:
                return arn, None
            if len(rest) == 3 and rest[1] == "keys":
                return arn, urllib.parse.unquote(rest[2])
            if len(rest) == 2 and rest[1] == "_writes":
                return arn, WRITES
            raise _StoreError(404, "UnknownOperationException", url.path)

        def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def serve(port: int) -> ThreadingHTTPServer:
    """Answer the data plane on 127.0.0.1:``port`` from a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(KeyValueData()))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="kvs-data-plane", daemon=True).start()
    return server


def store_writes(kvs_arn: str) -> list[str]:
    """Every value written to the store, oldest first, from the embedded default's data
    plane (through the proxy the emulator's environment names)."""
    return [str(w["Value"]) for w in _inspect(kvs_arn)["Writes"]]


def store_requests(kvs_arn: str) -> dict[str, int]:
    """The data-plane requests the store answered so far, by operation (everyone's: the
    institute's and the local sites server's)."""
    return {str(k): int(v) for k, v in _inspect(kvs_arn)["Requests"].items()}


def _inspect(kvs_arn: str) -> dict[str, Any]:
    import urllib.request

    account = kvs_arn.split(":")[4]
    url = (
        f"http://{account}.{HOST_SUFFIX}/key-value-stores/"
        f"{urllib.parse.quote(kvs_arn, safe='')}/_writes"
    )
    # An opener of its own: urlopen's shared one keeps the proxies of the environment it
    # first saw, which may predate the emulator's.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler())
    with opener.open(url, timeout=10) as response:
        found: dict[str, Any] = json.loads(response.read())
        return found
