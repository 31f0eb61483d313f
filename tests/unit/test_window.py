"""The publication window: properties over arrival times, cut times and time zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from difusion.window import PublicationWindow, Verdict, WindowRecord, WindowState

BCS = ZoneInfo("America/Mazatlan")
OPENING = datetime(2024, 6, 2, 20, 0, tzinfo=BCS)
WINDOW = PublicationWindow(OPENING, OPENING + timedelta(hours=24), timedelta(minutes=15))
OPEN = WindowRecord(WindowState.OPEN)
CLOSED = WindowRecord(WindowState.CLOSED, closed_at=WINDOW.closing)

offsets = st.integers(min_value=-12 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.datetimes(
    min_value=datetime(2024, 6, 1), max_value=datetime(2024, 6, 5), timezones=offsets
)
records = st.sampled_from(
    [
        WindowRecord(),
        OPEN,
        CLOSED,
        WindowRecord(WindowState.CLOSED, closed_at=OPENING + timedelta(hours=3), closed_early=True),
    ]
)


@given(cut=moments, now=moments, record=records)
def test_nothing_is_published_before_the_opening(cut, now, record):
    if now < WINDOW.opening:
        assert WINDOW.decide(cut, now, record).verdict is not Verdict.PUBLISH


@given(cut=moments, now=moments, record=records)
def test_nothing_is_published_after_the_close_plus_grace(cut, now, record):
    if now > WINDOW.closing_for(record) + WINDOW.grace:
        assert WINDOW.decide(cut, now, record).verdict is not Verdict.PUBLISH


@given(cut=moments, now=moments, record=records)
def test_after_the_close_only_cuts_at_or_before_it_are_published(cut, now, record):
    decision = WINDOW.decide(cut, now, record)
    if decision.verdict is Verdict.PUBLISH and now >= WINDOW.closing_for(record):
        assert cut <= WINDOW.closing_for(record)


@given(cut=moments, now=moments)
def test_until_the_timer_opens_the_window_the_clock_alone_publishes_nothing(cut, now):
    assert WINDOW.decide(cut, now, WindowRecord()).verdict is Verdict.HOLD


@given(cut=moments, now=moments)
def test_within_the_open_window_every_cut_is_published(cut, now):
    if WINDOW.opening <= now < WINDOW.closing:
        assert WINDOW.decide(cut, now, OPEN).verdict is Verdict.PUBLISH


def test_the_final_cut_arriving_within_the_grace_period_is_published():
    final_cut = WINDOW.closing - timedelta(minutes=5)
    arrives = WINDOW.closing + timedelta(minutes=10)
    assert WINDOW.decide(final_cut, arrives, CLOSED).verdict is Verdict.PUBLISH
    late = WINDOW.closing + timedelta(minutes=16)
    refused = WINDOW.decide(final_cut, late, CLOSED)
    assert refused.verdict is Verdict.REFUSE and "grace" in refused.reason


def test_an_early_close_moves_the_close_for_everything_after_it():
    closed_at = OPENING + timedelta(hours=5)
    early = WindowRecord(WindowState.CLOSED, closed_at=closed_at, closed_early=True)
    assert WINDOW.closing_for(early) == closed_at
    after = WINDOW.decide(closed_at + timedelta(minutes=1), closed_at + timedelta(minutes=2), early)
    assert after.verdict is Verdict.REFUSE


def test_the_window_is_the_same_instant_in_any_time_zone():
    utc_now = datetime(2024, 6, 3, 3, 0, tzinfo=UTC)  # 20:00 in BCS
    assert WINDOW.decide(utc_now, utc_now, OPEN).verdict is Verdict.PUBLISH
    assert WINDOW.decide(utc_now, utc_now - timedelta(seconds=1), OPEN).verdict is Verdict.HOLD


def test_naive_or_inverted_windows_are_refused():
    with pytest.raises(ValueError):
        PublicationWindow(datetime(2024, 6, 2, 20), datetime(2024, 6, 3, 20))
    with pytest.raises(ValueError):
        PublicationWindow(WINDOW.closing, WINDOW.opening)


# --- a delivery after the fact: judged as the gate judged it, at its start ---------------

timelines = st.sampled_from(
    [
        # (the timer opened at, the window closed at, early?)
        (OPENING, WINDOW.closing, False),
        (OPENING + timedelta(minutes=3), WINDOW.closing, False),  # a late timer
        (OPENING, OPENING + timedelta(hours=3), True),  # an operator's early close
    ]
)


@given(cut=moments, start=moments, timeline=timelines)
def test_after_the_close_a_delivery_is_judged_as_the_gate_judged_it_at_its_start(
    cut, start, timeline
):
    opened_at, closed_at, early = timeline
    # What the gate saw when the delivery started, told from the timeline itself
    if start < opened_at:
        then = WindowRecord()
    elif start < closed_at:
        then = WindowRecord(WindowState.OPEN, opened_at=opened_at)
    else:
        then = WindowRecord(WindowState.CLOSED, closed_at, early, opened_at)
    final = WindowRecord(WindowState.CLOSED, closed_at, early, opened_at)
    gate = WINDOW.decide(cut, start, then).verdict is Verdict.PUBLISH
    assert WINDOW.admitted(cut, start, final) is gate


def test_a_delivery_started_within_the_grace_is_inside_however_late_it_ends():
    # The record has no say on the end: only the start, which the gate decided on
    final = WindowRecord(WindowState.CLOSED, WINDOW.closing, False, OPENING)
    last_second = WINDOW.closing + WINDOW.grace
    final_cut = WINDOW.closing - timedelta(minutes=1)
    assert WINDOW.admitted(final_cut, last_second, final)
    assert not WINDOW.admitted(final_cut, last_second + timedelta(microseconds=1), final)
    assert not WINDOW.admitted(WINDOW.closing + timedelta(minutes=1), last_second, final)
