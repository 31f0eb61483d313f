"""The embedded default's one clock: the wall clock, or a clock the caller moves.

Every rule of the night reads the time: the window (sign's and replicate's decisions, the
timer that opens and closes it), the grace, the monitor's periods and the upstream stall.
On AWS that is the wall clock. On the embedded default a test (or the demo) may drive it
instead with a :class:`ControlledClock`, so the night goes as fast as the machine allows
and no decision depends on how busy the machine is: the services read it through the
factory's clock, the monitor's schedule waits on it, and the window timer's waits are
timers on it (``difusion.local.clocked_timer``).

Only time of day is controlled. What AWS measures in elapsed real time stays real: queue
visibility timeouts and the retry schedule (``PipelineOptions.time_scale``), Lambda's
remaining time, Powertools' idempotency expiry, Object Lock in the emulator (so a
controlled clock starts at the wall clock's time, never earlier).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


class PipelineClock(ABC):
    """What the embedded default reads the time from, and waits on."""

    @abstractmethod
    def now(self) -> datetime:
        """The current time, in UTC."""

    @abstractmethod
    def wait_until(self, moment: datetime) -> None:
        """Return once the clock has reached ``moment`` (at once if it has)."""


class WallClock(PipelineClock):
    """The real time: the embedded default as an operator runs it (``difusion local run``,
    the fault tier). The emulator's Step Functions keeps the window timer on it."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait_until(self, moment: datetime) -> None:
        time.sleep(max((moment - self.now()).total_seconds(), 0.0))


@dataclass(order=True)
class _Alarm:
    at: datetime
    order: int
    action: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class Alarm:
    """A handle on something scheduled on a :class:`ControlledClock`."""

    def __init__(self, alarm: _Alarm) -> None:
        self._alarm = alarm

    @property
    def at(self) -> datetime:
        return self._alarm.at

    def cancel(self) -> None:
        self._alarm.cancelled = True


class ControlledClock(PipelineClock):
    """A clock that stands still until it is moved: the time of the night is what the test
    (or the demo) says it is, whatever the machine is doing meanwhile.

    Moving it runs what was scheduled on the way (``call_at``), each at its own moment and
    in order, before the move returns — as the window timer fires at the opening, to the
    second, whenever the test reaches it.
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime.now(UTC).replace(microsecond=0)
        if start.tzinfo is None:
            raise ValueError("a controlled clock's start must carry its time zone")
        self._now = start.astimezone(UTC)
        self._alarms: list[_Alarm] = []
        self._order = itertools.count()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock ``delta`` forward; returns the new time."""
        if delta < timedelta(0):
            raise ValueError("a clock does not go back")
        return self.advance_to(self.now() + delta)

    def advance_to(self, moment: datetime) -> datetime:
        """Move the clock to ``moment`` (never back), running what falls due on the way."""
        while True:
            with self._lock:
                due = self._alarms[0] if self._alarms and self._alarms[0].at <= moment else None
                if due is None:
                    self._now = max(self._now, moment)
                    return self._now
                heapq.heappop(self._alarms)
                self._now = max(self._now, due.at)
            if not due.cancelled:
                due.action()  # outside the lock: it reads the clock, and may schedule again

    def wait_until(self, moment: datetime) -> None:
        self.advance_to(moment)

    def call_at(self, moment: datetime, action: Callable[[], None]) -> Alarm:
        """Run ``action`` when the clock reaches ``moment`` (on the thread that moves it)."""
        alarm = _Alarm(moment.astimezone(UTC), next(self._order), action)
        with self._lock:
            heapq.heappush(self._alarms, alarm)
        return Alarm(alarm)

    def pending(self) -> list[datetime]:
        """When what is still scheduled falls due."""
        with self._lock:
            return sorted(a.at for a in self._alarms if not a.cancelled)
