"""Run hours: exact to the poll, a long silence not counted, bad readings refused and
counted, and the same total when the run is cut anywhere, saved and restored."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.meters import NS_PER_HOUR, MeterStateError, Refusal, RunHours
from edge_agent.readings import Quality
from tests.meters.conftest import SECOND, intervals, reading, through_json

MAX_GAP = 60 * SECOND


def meter() -> RunHours:
    return RunHours("p101-run-hours", max_gap_ns=MAX_GAP, every_ns=60 * SECOND)


def test_time_counts_from_a_running_reading_to_the_next() -> None:
    hours = meter()
    for time_s, running in [(0, False), (10, True), (20, True), (25, False), (40, True)]:
        hours.feed(reading(running, time_s * SECOND))
    # Running seen at 10 (until 20) and 20 (until 25): 15 s. The last one has no "next" yet.
    assert hours.running_ns == 15 * SECOND
    hours.feed(reading(0.0, 41 * SECOND))
    assert hours.running_ns == 16 * SECOND


def test_a_long_silence_is_not_run_time() -> None:
    hours = meter()
    hours.feed(reading(True, 0))
    hours.feed(reading(True, 30 * SECOND))
    hours.feed(reading(True, 30 * SECOND + MAX_GAP + 1))  # the agent was down meanwhile
    hours.feed(reading(True, 30 * SECOND + MAX_GAP + 1 + 5 * SECOND))
    assert hours.running_ns == 35 * SECOND
    assert hours.gaps == 1
    hours.feed(reading(True, 30 * SECOND + 2 * MAX_GAP + 1 + 5 * SECOND))  # exactly the bound
    assert hours.running_ns == 35 * SECOND + MAX_GAP


@pytest.mark.parametrize(
    ("value", "quality", "refusal"),
    [
        (True, Quality.BAD, Refusal.BAD_QUALITY),
        (None, Quality.GOOD, Refusal.NOT_A_NUMBER),
        (math.nan, Quality.GOOD, Refusal.NOT_A_NUMBER),
        (math.inf, Quality.GOOD, Refusal.NOT_A_NUMBER),
        ("on", Quality.GOOD, Refusal.NOT_A_NUMBER),
    ],
)
def test_bad_values_are_refused_and_counted(
    value: object, quality: Quality, refusal: Refusal
) -> None:
    hours = meter()
    hours.feed(reading(True, 0))
    assert hours.feed(reading(value, 5 * SECOND, quality)) is None  # type: ignore[arg-type]
    hours.feed(reading(False, 10 * SECOND))
    # The refused reading neither stopped nor extended the run: 0..10 s counted once.
    assert hours.running_ns == 10 * SECOND
    assert hours.refused == {refusal: 1}


def test_a_clock_going_backwards_is_refused() -> None:
    hours = meter()
    hours.feed(reading(True, 100 * SECOND))
    hours.feed(reading(True, 50 * SECOND))
    hours.feed(reading(True, 110 * SECOND))
    assert hours.running_ns == 10 * SECOND
    assert hours.refused == {Refusal.CLOCK_BACKWARDS: 1}


def test_the_value_sent_is_hours_every_period_when_it_moved() -> None:
    hours = meter()
    sent = [hours.feed(reading(True, t * SECOND)) for t in range(0, 181, 30)]
    values = [(s.time_ns // SECOND, s.value) for s in sent if s is not None]
    assert values == [(0, 0.0), (60, 60 / 3600), (120, 120 / 3600), (180, 180 / 3600)]
    stopped = meter()
    stopped.feed(reading(False, 0))
    assert stopped.feed(reading(False, 120 * SECOND)) is None  # unchanged: nothing to send


def test_a_damaged_state_is_refused_and_changes_nothing() -> None:
    hours = meter()
    hours.feed(reading(True, 0))
    hours.feed(reading(True, SECOND))
    before = hours.state()
    broken = {**before, "running_ns": "lots"}
    with pytest.raises(MeterStateError, match="running_ns"):
        hours.restore(broken)
    with pytest.raises(MeterStateError):
        hours.restore({**before, "kind": "counter"})
    with pytest.raises(MeterStateError):
        hours.restore([1, 2])
    assert hours.state() == before


def test_start_hours_carry_an_existing_total() -> None:
    hours = RunHours("m", max_gap_ns=MAX_GAP, every_ns=SECOND, start_hours=1234.5)
    assert hours.hours == 1234.5 and hours.running_ns == 1234.5 * NS_PER_HOUR


# ---------------------------------------------------------------------- properties

samples = st.lists(st.tuples(intervals, st.booleans()), max_size=60)


def expected_running_ns(sequence: list[tuple[int, bool]]) -> int:
    """The oracle: the running intervals between consecutive readings, within the bound."""
    times, total, now = [], 0, 0
    for step, running in sequence:
        now += step
        times.append((now, running))
    for (start, running), (end, _) in zip(times, times[1:], strict=False):
        if running and end - start <= MAX_GAP:
            total += end - start
    return total


@given(samples)
def test_run_hours_are_the_sum_of_the_running_intervals(sequence: list[tuple[int, bool]]) -> None:
    hours, now = meter(), 0
    for step, running in sequence:
        now += step
        hours.feed(reading(running, now))
    assert hours.running_ns == expected_running_ns(sequence)
    assert not hours.refused


@given(samples, st.data())
def test_run_hours_survive_a_restart_anywhere(
    sequence: list[tuple[int, bool]], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(sequence)))
    whole, before, now = meter(), meter(), 0
    sent_whole, sent_split = [], []
    for index, (step, running) in enumerate(sequence):
        now += step
        if index == cut:
            restarted = meter()
            restarted.restore(through_json(before))
            before = restarted
        sent_whole.append(whole.feed(reading(running, now)))
        sent_split.append(before.feed(reading(running, now)))
    assert before.state() == whole.state()
    assert sent_split == sent_whole


def test_any_non_zero_value_is_running() -> None:
    """A speed sensor turning backwards (-5 rpm) is running; 0.0 is stopped."""
    hours = meter()
    for time_s, value in [(0, -5.0), (10, 0.0), (20, 1), (30, 0)]:
        hours.feed(reading(value, time_s * SECOND))
    assert hours.running_ns == 20 * SECOND
