"""A step's heartbeat: what it holds is renewed while it works, and lapses soon after it
stops — returned, dead, or past its own timeout. Driven by a fake clock: no waiting."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from difusion.adapters.heartbeat import Heartbeat, HoldTimes, MessageHold
from difusion.adapters.queues import FailedMessages, StepInvocation
from difusion.topology import (
    FUNCTIONS,
    HEARTBEAT_SECONDS,
    QUEUES,
    RETRY,
    STEP_HOLD_SECONDS,
    STEP_TIMEOUT_SHARE,
)

TIMES = HoldTimes(hold_seconds=60, every_seconds=20)


class FakeTime:
    """A monotonic clock the beats' waits move; the step ``stops`` at a given time."""

    def __init__(self, stops_at: float | None = None) -> None:
        self.now = 0.0
        self.stops_at = stops_at
        self.step_returned = threading.Event()

    def monotonic(self) -> float:
        return self.now

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        if self.stops_at is not None and self.now + seconds > self.stops_at:
            self.now = self.stops_at
            self.step_returned.set()
            stop.wait()  # the step returns now: the beat waits for it, as on a real clock
            return True
        self.now += seconds
        return stop.is_set()


def _held(times: HoldTimes, timeout: float, stops_at: float | None) -> list[tuple[float, int]]:
    clock = FakeTime(stops_at)
    renewed: list[tuple[float, int]] = []
    beats = Heartbeat(
        [lambda seconds: renewed.append((clock.now, seconds))],
        times,
        timeout,
        wait=clock.wait,
        monotonic=clock.monotonic,
    )
    with beats.holding():
        if stops_at is not None:
            clock.step_returned.wait()
    return renewed


def test_what_a_step_holds_is_renewed_from_its_start_until_it_returns():
    # Given a step that works 130 s
    renewed = _held(TIMES, timeout=600, stops_at=130)
    # Then it was held at the start and every 20 s, one hold ahead each time
    assert renewed == [(t, 60) for t in (0, 20, 40, 60, 80, 100, 120)]
    # so it never lapsed while the step worked, and lapses one hold after the last beat
    assert all(b - a < 60 for (a, _), (b, _) in itertools.pairwise(renewed))


def test_a_step_past_its_own_timeout_is_no_longer_held():
    # Given a step that hangs (never returns), with a timeout of 100 s
    renewed = _held(TIMES, timeout=100, stops_at=None)
    # Then the beats stop at its timeout: what it held lapses one hold later
    assert [t for t, _ in renewed] == [0, 20, 40, 60, 80]


def test_a_renewal_that_fails_does_not_stop_the_others_nor_the_next_beat():
    clock = FakeTime(stops_at=45)
    calls: list[str] = []

    def failing(_seconds: int) -> None:
        calls.append("failing")
        raise ConnectionError("reset")

    beats = Heartbeat(
        [failing, lambda _s: calls.append("lease")],
        TIMES,
        600,
        wait=clock.wait,
        monotonic=clock.monotonic,
    )
    with beats.holding():
        clock.step_returned.wait()
    assert calls == ["failing", "lease"] * 3


def test_a_crashed_step_renews_nothing_after_it_dies():
    # Given a step whose process dies (what the dispatcher raises for a killed Lambda)
    clock = FakeTime(stops_at=None)
    renewed: list[float] = []
    beats = Heartbeat(
        [lambda _s: renewed.append(clock.now)], TIMES, 600, wait=clock.wait, monotonic=lambda: 0
    )

    class Died(BaseException):
        pass

    # The fake wait never ends on its own: the beat runs until the step's exit stops it
    clock.stops_at = 35
    with pytest.raises(Died), beats.holding():
        clock.step_returned.wait()
        raise Died
    # Then nothing is renewed after it: the message comes back one hold after the last beat
    assert renewed == [0, 20]


def test_a_hold_must_be_renewed_before_it_lapses():
    with pytest.raises(ValueError, match="does not renew"):
        HoldTimes(hold_seconds=60, every_seconds=60)


def test_the_topologys_hold_is_short_renewed_often_and_inside_every_queues_visibility():
    times = HoldTimes()
    assert (times.hold_seconds, times.every_seconds) == (STEP_HOLD_SECONDS, HEARTBEAT_SECONDS)
    assert STEP_HOLD_SECONDS <= 120 and STEP_HOLD_SECONDS / HEARTBEAT_SECONDS >= 3
    for queue in QUEUES.values():
        assert queue.visibility_timeout_seconds > STEP_HOLD_SECONDS
        assert FUNCTIONS[queue.consumer].timeout_seconds * STEP_TIMEOUT_SHARE < (
            FUNCTIONS[queue.consumer].timeout_seconds
        )


class FakeSqs:
    def __init__(self, error: str | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error = error

    def change_message_visibility(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        if self.error:
            raise ClientError({"Error": {"Code": self.error}}, "ChangeMessageVisibility")


RECORD = {
    "messageId": "m1",
    "receiptHandle": "h1",
    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:difusion-deliveries.fifo",
}


def test_the_steps_message_is_held_by_its_receipt_handle_on_its_queue():
    sqs = FakeSqs()
    step = StepInvocation(FailedMessages(sqs, RETRY), 5, 60, TIMES, timeout_seconds=0)
    with step.holding(RECORD):
        pass
    assert sqs.calls[0] == {
        "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/difusion-deliveries.fifo",
        "ReceiptHandle": "h1",
        "VisibilityTimeout": 60,
    }


@pytest.mark.parametrize(
    "code", ["AWS.SimpleQueueService.MessageNotInflight", "ReceiptHandleIsInvalid"]
)
def test_a_message_no_longer_in_flight_has_nothing_left_to_hold(code):
    MessageHold(FakeSqs(code), "url", "h1")(60)  # no error: nothing to hold


def test_another_error_holding_the_message_is_raised_for_the_beat_to_log():
    with pytest.raises(ClientError):
        MessageHold(FakeSqs("AccessDenied"), "url", "h1")(60)
