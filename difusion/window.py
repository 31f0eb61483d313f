"""The publication window (RE art. 353.4): nothing published before the opening, nothing
after the close except the final cut within a grace period.

Two authorities must agree before anything is published: the clock, against the
configured window, and the window's state in the ledger, which the Step Functions timer
(or an operator's early close) moves from ``before_opening`` to ``open`` to ``closed``. A
timer that is late, or a clock that is early, can only hold publication back, never
bring it forward.

A delivery is inside the window or not by the moment replicate's gate lets it start
writing, not by when it ends: one that starts within the grace runs to its end — its last
file, the signed manifest, may land after the grace — because stopping it halfway would
leave the difusor's site half-published. The closing record judges each delivery the same
way (:meth:`PublicationWindow.admitted`), so the two never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class WindowState(StrEnum):
    BEFORE_OPENING = "before_opening"
    OPEN = "open"
    CLOSED = "closed"


class Verdict(StrEnum):
    PUBLISH = "publish"
    HOLD = "hold"  # before the opening: keep it, publish it at the opening
    REFUSE = "refuse"  # after the close (and its grace): never publish it


@dataclass(frozen=True)
class WindowRecord:
    """What the ledger says about the window."""

    state: WindowState = WindowState.BEFORE_OPENING
    closed_at: datetime | None = None
    closed_early: bool = False
    opened_at: datetime | None = None
    close_reason: str = ""  # an early close's, as the operator gave it

    def as_of(self, moment: datetime) -> WindowRecord:
        """The record as it stood at ``moment``, by its own times (for judging, after the
        close, what a decision at ``moment`` saw)."""
        if self.opened_at is not None and moment < self.opened_at:
            return WindowRecord()
        closed_at = self.closed_at if self.state is WindowState.CLOSED else None
        if closed_at is not None and moment < closed_at:
            return WindowRecord(WindowState.OPEN, opened_at=self.opened_at)
        return self


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class PublicationWindow:
    opening: datetime
    closing: datetime
    grace: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        if self.opening.tzinfo is None or self.closing.tzinfo is None:
            raise ValueError("window times must carry their time zone")
        if self.closing <= self.opening:
            raise ValueError("the window must close after it opens")

    def closing_for(self, record: WindowRecord) -> datetime:
        """The close in force: the configured one, or an earlier close by the operator."""
        if record.state is WindowState.CLOSED and record.closed_at is not None:
            return min(self.closing, record.closed_at)
        return self.closing

    def decide(self, cut_time: datetime, now: datetime, record: WindowRecord) -> Decision:
        """May a snapshot cut at ``cut_time`` be published at ``now``?"""
        if now < self.opening or record.state is WindowState.BEFORE_OPENING:
            return Decision(
                Verdict.HOLD,
                f"publication opens at {self.opening.isoformat()}; held until then",
            )
        closing = self.closing_for(record)
        if now < closing and record.state is WindowState.OPEN:
            return Decision(Verdict.PUBLISH, "the window is open")
        if cut_time > closing:
            return Decision(
                Verdict.REFUSE,
                f"cut time {cut_time.isoformat()} is after the close at {closing.isoformat()}",
            )
        if now > closing + self.grace:
            return Decision(
                Verdict.REFUSE,
                f"arrived after the close at {closing.isoformat()} and its grace period "
                f"of {_duration(self.grace)}",
            )
        return Decision(Verdict.PUBLISH, "final cut, within the grace period after the close")

    def admitted(self, cut_time: datetime, started_at: datetime, record: WindowRecord) -> bool:
        """Was a delivery of a cut taken at ``cut_time``, whose publishing attempt started at
        ``started_at``, inside the window? The gate's own decision at that start, against
        the record as it stood then; when the delivery finished does not matter."""
        decision = self.decide(cut_time, started_at, record.as_of(started_at))
        return decision.verdict is Verdict.PUBLISH


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds // 60} min" if seconds % 60 == 0 and seconds else f"{seconds} s"
