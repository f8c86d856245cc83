"""The wall clock the meters run on stepped a year ahead and corrected back: run hours gain
neither the year nor lose the run after the correction, and every meter carries on
(sends again) once three readings in a row confirm the clock was set back."""

from __future__ import annotations

from edge_agent.meters import CounterMeter, GaugeMeter, RunHours, StartsMeter
from edge_agent.meters.downtime import DowntimeTracker
from edge_agent.meters.samples import CLOCK_CONFIRMATIONS, Refusal
from tests.meters.conftest import SECOND, reading, through_json

YEAR = 365 * 86_400 * SECOND
HOUR = 3600 * SECOND


def test_run_hours_through_a_clock_a_year_ahead_and_back() -> None:
    hours = RunHours("p101-run-hours", max_gap_ns=3 * SECOND, every_ns=300 * SECOND)
    polls = [t * SECOND for t in range(0, 11)]  # 10 s running
    polls.append(polls[-1] + YEAR)  # the clock steps a year ahead
    start = polls[-2]
    polls += [start + t * SECOND for t in range(1, 3601)]  # corrected: an hour more
    sent = [hours.feed(reading(True, t)) for t in polls]
    # The year is a gap; after the correction CLOCK_CONFIRMATIONS - 1 readings are refused
    # and the step back counts nothing: 10 s + (3600 - CLOCK_CONFIRMATIONS) s.
    assert hours.running_ns == (10 + 3600 - CLOCK_CONFIRMATIONS) * SECOND
    assert hours.running_ns < 2 * HOUR
    assert hours.refused == {Refusal.CLOCK_BACKWARDS: CLOCK_CONFIRMATIONS - 1}
    after = [s for s in sent[12:] if s is not None]
    assert len(after) >= 10  # it sends again every 5 min, not a year later


def test_a_single_reading_from_the_past_is_still_refused() -> None:
    hours = RunHours("h", max_gap_ns=3 * SECOND, every_ns=300 * SECOND)
    for t in (100, 101, 50, 102, 40, 103):
        hours.feed(reading(True, t * SECOND))
    assert hours.running_ns == 3 * SECOND
    assert hours.refused == {Refusal.CLOCK_BACKWARDS: 2}


def test_every_meter_carries_on_after_the_clock_is_set_back() -> None:
    meters = [
        CounterMeter("c", every_ns=60 * SECOND, bits=32),
        GaugeMeter("g", every_ns=60 * SECOND),
        StartsMeter("s", every_ns=60 * SECOND),
    ]
    for meter in meters:
        meter.feed(reading(1, YEAR))
        for n in range(1, 200):
            meter.feed(reading(n, n * 10 * SECOND))
        assert meter.last_ns == 199 * 10 * SECOND
        assert meter.refused == {Refusal.CLOCK_BACKWARDS: CLOCK_CONFIRMATIONS - 1}
        assert meter.send.last_ns is not None and meter.send.last_ns < YEAR


def test_downtime_follows_the_corrected_clock() -> None:
    tracker = DowntimeTracker("P-101")
    tracker.feed(reading(1, YEAR))
    changes = [tracker.feed(reading(n % 2, n * SECOND)) for n in range(1, 10)]
    assert [c.status for c in changes if c is not None][:2] == ["OFFLINE", "ONLINE"]


def test_a_restart_between_the_refusals_keeps_the_count() -> None:
    hours = RunHours("h", max_gap_ns=3 * SECOND, every_ns=300 * SECOND)
    hours.feed(reading(True, YEAR))
    hours.feed(reading(True, 1 * SECOND))
    restarted = RunHours("h", max_gap_ns=3 * SECOND, every_ns=300 * SECOND)
    restarted.restore(through_json(hours))
    assert restarted.behind == 1
    for t in (2, 3, 4):
        restarted.feed(reading(True, t * SECOND))
    assert restarted.last_ns == 4 * SECOND and restarted.running_ns == SECOND
