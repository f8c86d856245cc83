"""Starts: one per rising edge of the running sensor, across restarts too."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge_agent.meters import Refusal, StartsMeter
from edge_agent.readings import Quality
from tests.meters.conftest import SECOND, reading, through_json


def meter() -> StartsMeter:
    return StartsMeter("p101-starts", every_ns=60 * SECOND)


def test_rising_edges_only() -> None:
    starts = meter()
    for n, running in enumerate([True, True, False, True, False, False, 1, 0.0, 2.5]):
        starts.feed(reading(running, n * SECOND))
    assert starts.starts == 3  # the first reading is not a start: nothing came before it


def test_a_bad_reading_is_not_a_stop() -> None:
    starts = meter()
    starts.feed(reading(True, 0))
    starts.feed(reading(False, SECOND, Quality.BAD))
    starts.feed(reading(True, 2 * SECOND))
    assert starts.starts == 0
    assert starts.refused == {Refusal.BAD_QUALITY: 1}


def test_a_start_while_the_agent_was_down_counts_once_after() -> None:
    starts = meter()
    starts.feed(reading(False, 0))
    restarted = meter()
    restarted.restore(through_json(starts))
    restarted.feed(reading(True, 600 * SECOND))
    assert restarted.starts == 1


@given(st.lists(st.booleans(), max_size=80), st.data())
def test_starts_equal_rising_edges_across_a_restart(
    states: list[bool], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(states)))
    starts = meter()
    for index, running in enumerate(states):
        if index == cut:
            restarted = meter()
            restarted.restore(through_json(starts))
            starts = restarted
        starts.feed(reading(running, index * SECOND))
    edges = sum(1 for a, b in zip(states, states[1:], strict=False) if not a and b)
    assert starts.starts == edges
