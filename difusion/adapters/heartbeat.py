"""A step's heartbeat: what it holds while it works, held a short while at a time.

A queue-driven step holds its message (invisible to other consumers), its idempotency
record (in progress) and, for a delivery, the difusor's lease. Each is held for one short
*hold* and renewed by a beat every so often while the step works; the beats stop when the
step returns, or at the step's own timeout. A step whose process dies renews nothing, so
everything it held lapses within one hold and a retry can take the work over — the usual
SQS heartbeat ("Amazon SQS visibility timeout", SQS developer guide: extend the timeout
with ``ChangeMessageVisibility`` while the work goes on).

Time is a dependency: the beats wait through ``wait`` and read ``monotonic``, so a test
drives them without the wall clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from difusion.topology import HEARTBEAT_SECONDS, STEP_HOLD_SECONDS

logger = logging.getLogger(__name__)

# Renews one thing the step holds for the given seconds from now.
Renewal = Callable[[int], None]
# Waits up to the given seconds; True when the step has returned (stop waiting).
Wait = Callable[[threading.Event, float], bool]


def _wait(stop: threading.Event, seconds: float) -> bool:
    return stop.wait(seconds)


@dataclass(frozen=True)
class HoldTimes:
    """How long a step holds what it holds, how often it renews it, and for how long at
    most (the step's timeout). Seconds, in the pipeline's time."""

    hold_seconds: int = STEP_HOLD_SECONDS
    every_seconds: float = HEARTBEAT_SECONDS

    def __post_init__(self) -> None:
        if not 0 < self.every_seconds < self.hold_seconds:
            raise ValueError(
                f"a heartbeat every {self.every_seconds} s does not renew a hold of "
                f"{self.hold_seconds} s before it lapses"
            )


class Heartbeat:
    """Holds a step's claims while it works: :meth:`holding` renews each one at once and
    then every ``times.every_seconds``, until the step returns or ``timeout_seconds``
    have passed. A renewal that fails is logged and tried again at the next beat (what it
    held may lapse early: the work is then retried, as after a crash)."""

    def __init__(
        self,
        renewals: Sequence[Renewal],
        times: HoldTimes,
        timeout_seconds: float,
        *,
        wait: Wait = _wait,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._renewals = list(renewals)
        self._times = times
        self._timeout = timeout_seconds
        self._wait = wait
        self._monotonic = monotonic
        self.beats = 0

    @contextmanager
    def holding(self) -> Iterator[None]:
        self._beat()
        stop = threading.Event()
        beating = threading.Thread(target=self._run, args=(stop,), name="heartbeat", daemon=True)
        beating.start()
        try:
            yield
        finally:
            stop.set()
            beating.join()

    def _run(self, stop: threading.Event) -> None:
        started = self._monotonic()
        while not self._wait(stop, self._times.every_seconds):
            if self._monotonic() - started >= self._timeout:
                logger.warning(
                    "step timed out: its message, record and lease lapse within one hold",
                    extra={"timeout_seconds": self._timeout},
                )
                return
            self._beat()

    def _beat(self) -> None:
        self.beats += 1
        for renew in self._renewals:
            try:
                renew(self._times.hold_seconds)
            except Exception as exc:  # the next beat tries again
                logger.warning("could not renew a hold", extra={"error": f"{exc!r}"[:300]})


class MessageHold:
    """The step's own message, from its event record: ``ChangeMessageVisibility`` on its
    receipt handle (Lambda's event source mapping passes it; the mapping's delete on
    success uses the same handle, which a visibility change leaves valid)."""

    def __init__(self, sqs: Any, queue_url: str, receipt_handle: str) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._receipt = receipt_handle

    def __call__(self, seconds: int) -> None:
        try:
            self._sqs.change_message_visibility(
                QueueUrl=self._url, ReceiptHandle=self._receipt, VisibilityTimeout=seconds
            )
        except ClientError as exc:
            # No longer in flight (deleted, or handed out again): nothing left to hold.
            code = exc.response.get("Error", {}).get("Code", "")
            if "MessageNotInflight" in code or "ReceiptHandleIsInvalid" in code:
                return
            raise
