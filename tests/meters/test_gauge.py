"""Gauges: a value every period, sooner beyond the deadband; bad values refused."""

from __future__ import annotations

import math

from edge_agent.meters import GaugeMeter, Refusal
from edge_agent.readings import Quality
from tests.meters.conftest import SECOND, reading, through_json


def test_every_period_or_beyond_the_deadband() -> None:
    gauge = GaugeMeter("p101-temp", every_ns=60 * SECOND, deadband=0.5)
    feed = [(0, 70.0), (10, 70.4), (20, 70.6), (30, 70.9), (80, 70.9), (90, 70.0)]
    sent = [gauge.feed(reading(v, t * SECOND)) for t, v in feed]
    assert [(s.time_ns // SECOND, s.value) for s in sent if s is not None] == [
        (0, 70.0),  # the first value
        (20, 70.6),  # moved 0.6 > 0.5 since the value sent
        (80, 70.9),  # a period since the last one sent (unchanged values are sent too)
        (90, 70.0),  # moved 0.9
    ]


def test_without_deadband_only_the_period() -> None:
    gauge = GaugeMeter("g", every_ns=60 * SECOND)
    sent = [gauge.feed(reading(float(t), t * SECOND)) for t in range(0, 130, 10)]
    assert [s.value for s in sent if s is not None] == [0.0, 60.0, 120.0]


def test_bad_values_are_refused_and_counted() -> None:
    gauge = GaugeMeter("g", every_ns=SECOND)
    gauge.feed(reading(1.0, 10 * SECOND))
    assert gauge.feed(reading(math.nan, 11 * SECOND)) is None
    assert gauge.feed(reading(5.0, 12 * SECOND, Quality.BAD)) is None
    assert gauge.feed(reading(5.0, 9 * SECOND)) is None
    assert gauge.refused == {
        Refusal.NOT_A_NUMBER: 1,
        Refusal.BAD_QUALITY: 1,
        Refusal.CLOCK_BACKWARDS: 1,
    }


def test_the_period_carries_over_a_restart() -> None:
    gauge = GaugeMeter("g", every_ns=60 * SECOND)
    gauge.feed(reading(1.0, 0))
    restarted = GaugeMeter("g", every_ns=60 * SECOND)
    restarted.restore(through_json(gauge))
    assert restarted.feed(reading(1.0, 30 * SECOND)) is None
    assert restarted.feed(reading(1.0, 60 * SECOND)) is not None


def test_a_change_of_exactly_the_deadband_waits_for_the_period() -> None:
    gauge = GaugeMeter("g", every_ns=60 * SECOND, deadband=0.5)
    gauge.feed(reading(10.0, 0))
    assert gauge.feed(reading(10.5, SECOND)) is None
    assert gauge.feed(reading(10.75, 2 * SECOND)) is not None


def test_a_value_no_message_could_carry_is_refused_not_dead_lettered() -> None:
    """1e308 is a finite float, but beyond a plant data message's bound (wire MAX_VALUE):
    refused and counted at the meter rather than queued and dead-lettered downstream."""
    gauge = GaugeMeter("g", every_ns=SECOND)
    assert gauge.feed(reading(1e308, SECOND)) is None
    assert gauge.feed(reading(-1e16, 2 * SECOND)) is None
    assert gauge.refused == {Refusal.OUT_OF_RANGE: 2}
    assert gauge.feed(reading(1e15, 3 * SECOND)) is not None
