"""The local dispatcher: plays Lambda's part on the embedded default.

Lambda's SQS event source mapping polls a queue, invokes the function with a batch of
records and deletes what the function did not report as failed. This does the same
against the emulator's queues, calling the very handler functions the Lambdas run. Failed
messages stay in flight, reappear after the visibility timeout and, past the queue's
``maxReceiveCount``, land in the dead-letter queue — SQS's behaviour, not ours.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from difusion.local.emulator import REGION

Handler = Callable[[dict[str, Any], Any], Any]

# The function whose invocation runs on this thread (its event source mapping's polling
# included): the tests' IAM checks sign each AWS call as that function's role.
current_function: ContextVar[str | None] = ContextVar("current_function", default=None)


@contextmanager
def invoking(function_name: str) -> Iterator[None]:
    """Mark the calls made inside as ``function_name``'s (see ``difusion.local.iam``)."""
    token = current_function.set(function_name)
    try:
        yield
    finally:
        current_function.reset(token)


class InvocationDied(BaseException):
    """Raised inside a handler, it ends the invocation as a crashed Lambda's ends (killed,
    out of memory, timed out): nothing in it catches it, nothing is deleted or reported,
    and its messages return after the queue's visibility timeout. For tests and the fault
    tier; a ``BaseException`` so that the handlers' own ``except Exception`` pass it by."""


@dataclass
class LambdaContext:
    """What a handler reads from Lambda's context object."""

    function_name: str
    memory_limit_in_mb: int = 1024
    timeout_seconds: float = 900
    aws_request_id: str = ""
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = ""
    function_version: str = "$LATEST"

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())
        self.invoked_function_arn = (
            f"arn:aws:lambda:{REGION}:123456789012:function:{self.function_name}"
        )
        self.log_group_name = f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


@dataclass(frozen=True)
class Route:
    """One event source mapping: a queue, the function it invokes, and how many pollers."""

    function_name: str
    queue_url: str
    handler: Handler
    batch_size: int = 10
    pollers: int = 1
    # The function's timeout as its context reports it (Powertools' in-progress window):
    # in accelerated time, scaled like the queue's visibility timeout it must stay under.
    timeout_seconds: float = 900


class LocalDispatcher:
    def __init__(self, sqs: Any, routes: list[Route]) -> None:
        self._sqs = sqs
        self._routes = routes
        self._arns = {
            r.queue_url: sqs.get_queue_attributes(
                QueueUrl=r.queue_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            for r in routes
        }
        self.invocations = 0
        self.handler_errors: list[str] = []
        # Messages a dead invocation took: message id → (queue URL, receipt handle).
        self.abandoned: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def poll(self, route: Route) -> int:
        """One poll of one queue: receive a batch, invoke, delete what succeeded."""
        with invoking(route.function_name):
            return self._poll(route)

    def _poll(self, route: Route) -> int:
        messages = self._sqs.receive_message(
            QueueUrl=route.queue_url,
            MaxNumberOfMessages=route.batch_size,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        with self._lock:  # received again: no longer held by a dead invocation
            for m in messages:
                self.abandoned.pop(m["MessageId"], None)
        event = {"Records": [self._record(route, m) for m in messages]}
        try:
            response = route.handler(
                event,
                LambdaContext(
                    function_name=route.function_name, timeout_seconds=route.timeout_seconds
                ),
            )
        except InvocationDied:
            # Nothing deleted, nothing returned early: invisible until the timeout.
            with self._lock:
                self.invocations += 1
                for m in messages:
                    self.abandoned[m["MessageId"]] = (route.queue_url, m["ReceiptHandle"])
            return len(messages)
        except Exception as exc:
            # Lambda returns a batch whose invocation raised to the queue, whole.
            with self._lock:
                self.invocations += 1
                self.handler_errors.append(f"{route.function_name}: {type(exc).__name__}: {exc}")
            return len(messages)
        with self._lock:
            self.invocations += 1
        failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=route.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
        return len(messages)

    def pending(self) -> int:
        """Messages visible or in flight across every routed queue, but for those a dead
        invocation left invisible (:meth:`expire_abandoned` brings them back)."""
        total = 0
        for route in self._routes:
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=route.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            with self._lock:
                held = sum(1 for url, _ in self.abandoned.values() if url == route.queue_url)
            total += int(attributes["ApproximateNumberOfMessages"])
            total += max(int(attributes["ApproximateNumberOfMessagesNotVisible"]) - held, 0)
        return total

    def expire_abandoned(self) -> int:
        """The visibility timeout of every message a dead invocation left has passed: they
        are visible again (as on AWS, much later). Returns how many."""
        with self._lock:
            abandoned, self.abandoned = self.abandoned, {}
        for queue_url, receipt in abandoned.values():
            self._sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
            )
        return len(abandoned)

    def run_until_idle(
        self,
        timeout: float = 300.0,
        idle_pause: float = 0.02,
        max_idle_pause: float = 0.2,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        """Keep every route's pollers busy until no queue holds a message (but for those
        a dead invocation left, which return after their visibility timeout)."""
        deadline = time.monotonic() + timeout
        stop = threading.Event()
        errors: list[BaseException] = []

        def poller(route: Route) -> None:
            pause = idle_pause
            while not stop.is_set():
                try:
                    if self.poll(route) == 0:
                        # Back off while idle so the emulator serves the busy queues.
                        stop.wait(pause)
                        pause = min(pause * 2, max_idle_pause)
                    else:
                        pause = idle_pause
                except BaseException as exc:  # surfaced to the caller below
                    errors.append(exc)
                    stop.set()

        total_pollers = sum(r.pollers for r in self._routes)
        with ThreadPoolExecutor(max_workers=total_pollers) as pool:
            for route in self._routes:
                for _ in range(route.pollers):
                    pool.submit(poller, route)
            try:
                while not stop.is_set():
                    if on_tick:
                        on_tick()
                    if self.pending() == 0:
                        # Twice, a moment apart: a handler may be about to send the next step.
                        time.sleep(0.2)
                        if self.pending() == 0:
                            break
                    if time.monotonic() > deadline:
                        raise TimeoutError("the pipeline did not settle in time")
                    time.sleep(0.25)
            finally:
                stop.set()
        if errors:
            raise errors[0]

    def _record(self, route: Route, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self._arns[route.queue_url],
            "awsRegion": REGION,
        }
