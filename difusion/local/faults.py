"""Faults in the functions' AWS calls, injected below botocore's retries.

The fault tier (``make chaos``) and the crash harness run the embedded default with this
injector installed. It wraps ``botocore.endpoint.Endpoint._do_get_response``, the one
place every attempt of every call passes through *inside* botocore's retry loop, so
botocore's own retries (standard mode, and the legacy mode Powertools' idempotency client
uses) see each fault as they would see it on AWS and retry it or give up:

=====================  ==========================================  ==================
kind                   what the caller sees                        executed?
=====================  ==========================================  ==================
``throttled``          S3 ``503 SlowDown``; DynamoDB ``400``        no
                       ``ProvisionedThroughputExceededException``
                       or ``ThrottlingException``; the others'
                       throttling code
``internal_error``     ``500 InternalError`` (the service's name)   no
``connection_refused`` ``EndpointConnectionError``                  no
``connection_reset``   ``ConnectionClosedError``                    yes: answer lost
``read_timeout``       ``ReadTimeoutError``                         yes: answer lost
=====================  ==========================================  ==================

The last two are the ambiguous ones: the service executed the call and the answer never
reached the caller, so a retried conditional write finds its own first attempt.

Only the functions' calls are faulted: a call made on a thread where
``dispatcher.current_function`` is set, or through a client built while a function ran
(the functions' worker pools). Lambda's event source mapping (the dispatcher's receive and
delete, made with a client no function built) is AWS's part and is never faulted, nor is
anything the harness itself does (provisioning, uploads, reads).

Decisions are deterministic for a seed: each attempt is decided by a hash of the seed, the
function, the operation, a stable name of its target (an S3 object's bucket, without the
deployment's random suffix, and key) and how many times that same target was called
before. Threads change the order of calls to *different* targets, not the decision for
any one of them, so a seed replays closely (not exactly: a timing-dependent extra call
shifts that target's count).

The same hook counts every function call, which gives the crash harness its kill points:
``KillPoint(n, after)`` SIGKILLs the process at the n-th call, before it is sent or after
the service executed it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sys
import threading
import urllib.parse
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar
from unittest import mock

from botocore.awsrequest import AWSResponse
from botocore.endpoint import Endpoint
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from botocore.session import Session as BotocoreSession

from difusion.local.dispatcher import current_function


class FaultKind(StrEnum):
    THROTTLED = "throttled"
    INTERNAL_ERROR = "internal_error"
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_RESET = "connection_reset"
    READ_TIMEOUT = "read_timeout"

    @property
    def executed(self) -> bool:
        """Whether the service executed the call before its answer was lost."""
        return self in (FaultKind.CONNECTION_RESET, FaultKind.READ_TIMEOUT)


# Lambda's event source mapping polls and deletes with the function's role, but it is
# AWS's machinery, not the function's code: the dispatcher's calls are never faulted.
_EVENT_SOURCE_MAPPING = frozenset(
    {"sqs.ReceiveMessage", "sqs.DeleteMessage", "sqs.DeleteMessageBatch"}
)
# The throttling answer each service gives (botocore's retry handlers know each code).
_THROTTLING: dict[str, tuple[tuple[int, str], ...]] = {
    "s3": ((503, "SlowDown"),),
    "dynamodb": ((400, "ProvisionedThroughputExceededException"), (400, "ThrottlingException")),
    "sqs": ((400, "ThrottlingException"),),
    "secretsmanager": ((400, "ThrottlingException"),),
    "sts": ((400, "Throttling"),),
    "cloudfront": ((400, "Throttling"),),
}
_INTERNAL: dict[str, str] = {
    "s3": "InternalError",
    "dynamodb": "InternalServerError",
    "cloudfront": "ServiceUnavailable",
}
# Each deployment on the emulator names its buckets with a random suffix; the suffix is
# left out of a call's target so a seed decides the same faults in every deployment.
_DEPLOYMENT_SUFFIX = re.compile(r"-[0-9a-f]{6}(?=/|$)")


def _unit(*parts: object) -> tuple[float, int]:
    """A uniform number in [0, 1) and an integer, from ``parts`` (stable across runs)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64, int.from_bytes(digest[8:16], "big")


@dataclass(frozen=True)
class FaultPlan:
    """Which attempts fail, and how: ``rate`` of the functions' calls, each fault one of
    ``kinds`` (drawn evenly)."""

    rate: float
    seed: int
    kinds: tuple[FaultKind, ...] = tuple(FaultKind)

    def decide(self, function: str, call: str, target: str, occurrence: int) -> FaultKind | None:
        draw, pick = _unit(self.seed, function, call, target, occurrence)
        if draw >= self.rate or not self.kinds:
            return None
        return self.kinds[pick % len(self.kinds)]


@dataclass(frozen=True)
class KillPoint:
    """SIGKILL the process at the ``call``-th AWS call the functions make (1-based):
    before it is sent, or ``after`` the service executed it (its answer dies with us)."""

    call: int
    after: bool

    def __str__(self) -> str:
        return f"call {self.call} {'after' if self.after else 'before'} it executed"


def _sigkill(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class FaultCounts:
    """What the injector saw: every figure the chaos runner prints."""

    calls: int = 0  # the functions' calls, every attempt
    retries: int = 0  # attempts botocore made again (attempt > 1)
    injected: Counter[str] = field(default_factory=Counter)  # by kind
    by_call: Counter[str] = field(default_factory=Counter)  # "function service.Op kind"
    # Messages the event source mapping received again (ApproximateReceiveCount > 1), by
    # the queue's name: the steps' own retries.
    redelivered: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "retries": self.retries,
            "injected": dict(sorted(self.injected.items())),
            "injected_total": sum(self.injected.values()),
            "by_call": dict(self.by_call.most_common()),
            "redelivered": dict(sorted(self.redelivered.items())),
        }


class FaultInjector:
    """Installs the hook for this process; use as a context manager. ``plan`` None: no
    faults (the hook still counts calls, and kills at ``kill``)."""

    _active: ClassVar[FaultInjector | None] = None

    def __init__(
        self,
        plan: FaultPlan | None = None,
        kill: KillPoint | None = None,
        on_kill: Callable[[str], None] = _sigkill,
    ) -> None:
        self.plan = plan
        self.kill = kill
        self._on_kill = on_kill
        self.counts = FaultCounts()
        self._occurrences: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()
        self._built_by: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._patches = ExitStack()

    def __enter__(self) -> FaultInjector:
        self.install()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.uninstall()

    def install(self) -> None:
        if FaultInjector._active is not None:
            raise RuntimeError("another FaultInjector is installed")
        injector = self
        do_get_response = Endpoint._do_get_response
        create_client = BotocoreSession.create_client

        def faulty_get_response(
            endpoint: Endpoint, request: Any, operation_model: Any, context: Any
        ) -> Any:
            return injector._attempt(
                lambda: do_get_response(endpoint, request, operation_model, context),
                endpoint,
                request,
                operation_model,
                context,
            )

        def remembered_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = create_client(session, *args, **kwargs)
            function = current_function.get()
            if function is not None:
                with injector._lock:
                    injector._built_by[client._endpoint] = function
            return client

        self._patches = ExitStack()
        self._patches.enter_context(
            mock.patch.object(Endpoint, "_do_get_response", faulty_get_response)
        )
        self._patches.enter_context(
            mock.patch.object(BotocoreSession, "create_client", remembered_client)
        )
        FaultInjector._active = self

    def uninstall(self) -> None:
        self._patches.close()
        if FaultInjector._active is self:
            FaultInjector._active = None

    # --- one attempt -------------------------------------------------------------------

    def _attempt(
        self,
        send: Callable[[], Any],
        endpoint: Endpoint,
        request: Any,
        operation_model: Any,
        context: Any,
    ) -> Any:
        service = operation_model.service_model.endpoint_prefix
        call = f"{service}.{operation_model.name}"
        function = self._function_of(endpoint, call)
        if function is None:
            result = send()
            if call == "sqs.ReceiveMessage":
                self._count_redeliveries(request, result)
            return result
        target = _target(service, request)
        with self._lock:
            self.counts.calls += 1
            number = self.counts.calls
            if int((context or {}).get("retries", {}).get("attempt", 1)) > 1:
                self.counts.retries += 1
            key = (function, call, target)
            self._occurrences[key] += 1
            occurrence = self._occurrences[key]
        where = f"{function} {call} {target}".rstrip()
        if self.kill is not None and number == self.kill.call:
            if self.kill.after:
                send()
            self._on_kill(f"chaos: SIGKILL at {self.kill}: {where}")
        kind = (
            self.plan.decide(function, call, target, occurrence) if self.plan is not None else None
        )
        if kind is None:
            return send()
        with self._lock:
            self.counts.injected[str(kind)] += 1
            self.counts.by_call[f"{function} {call} {kind}"] += 1
        return _fail(kind, service, request, send, variant=occurrence)

    def _function_of(self, endpoint: Endpoint, call: str) -> str | None:
        with self._lock:
            built_by = self._built_by.get(endpoint)
        if built_by is not None:
            return built_by
        if call in _EVENT_SOURCE_MAPPING:
            return None
        return current_function.get()

    def _count_redeliveries(self, request: Any, result: Any) -> None:
        success, _ = result
        if success is None:
            return
        messages = success[1].get("Messages", [])
        again = [
            m
            for m in messages
            if int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)) > 1
        ]
        if not again:
            return
        queue = _queue_name(request)
        with self._lock:
            self.counts.redelivered[queue] += len(again)


def _fail(
    kind: FaultKind, service: str, request: Any, send: Callable[[], Any], variant: int
) -> Any:
    """What the caller gets instead of the answer: ``(success, exception)`` as
    ``Endpoint._do_get_response`` returns it. ``variant`` picks among a service's
    throttling codes."""
    url = request.url
    if kind is FaultKind.CONNECTION_REFUSED:
        return None, EndpointConnectionError(endpoint_url=url)
    if kind.executed:
        success, _ = send()  # the service did it; its answer is lost on the way back
        if success is not None:
            body = success[1].get("Body")
            if hasattr(body, "close"):
                body.close()
        if kind is FaultKind.CONNECTION_RESET:
            return None, ConnectionClosedError(endpoint_url=url)
        return None, ReadTimeoutError(endpoint_url=url, error="injected by difusion chaos")
    if kind is FaultKind.THROTTLED:
        choices = _THROTTLING.get(service, ((400, "ThrottlingException"),))
        status, code = choices[variant % len(choices)]
    else:
        status, code = 500, _INTERNAL.get(service, "InternalFailure")
    return _error_answer(url, status, code), None


class _EmptyBody:
    def stream(self) -> Iterator[bytes]:
        yield b""


def _error_answer(url: str, status: int, code: str) -> tuple[AWSResponse, dict[str, Any]]:
    headers = {"x-amzn-requestid": "chaos", "x-amz-request-id": "chaos"}
    parsed = {
        "Error": {"Code": code, "Message": f"{code} (injected by difusion chaos)"},
        "ResponseMetadata": {
            "RequestId": "chaos",
            "HTTPStatusCode": status,
            "HTTPHeaders": headers,
            "RetryAttempts": 0,
        },
    }
    return AWSResponse(url, status, headers, _EmptyBody()), parsed


def _target(service: str, request: Any) -> str:
    """A stable name for what the call touches: an S3 object's bucket and key (path style
    on the emulator), nothing for the other services (their calls go to ``/``)."""
    if service != "s3":
        return ""
    path = urllib.parse.urlsplit(request.url).path
    return _DEPLOYMENT_SUFFIX.sub("", path)


def _queue_name(request: Any) -> str:
    body = request.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    url = ""
    if isinstance(body, str) and body:
        try:
            url = str(json.loads(body).get("QueueUrl", ""))
        except ValueError:
            url = urllib.parse.parse_qs(body).get("QueueUrl", [""])[0]
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return _DEPLOYMENT_SUFFIX.sub("", name.removesuffix(".fifo")) or "?"
