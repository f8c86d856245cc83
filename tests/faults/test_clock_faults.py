"""Clocks nobody scripted: source timestamps anywhere in int64 range, wall-clock steps,
restarts on a clock that started anywhere. The engine never fires a deadline early, never
loses an activation, and the agent's clock helpers never raise."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.alerts import parse_time
from edge_agent.readings import Quality, Reading
from edge_agent.rules import AlarmEvent, RuleEngine, RuleStateStore
from edge_agent.rules.render import to_alert_message
from edge_agent.service.agent_clock import (
    RELEASE_TIME_NS,
    SAVED_STATE_SLACK_NS,
    SourceTimeCheck,
    WallClockCheck,
    on_wall_clock,
    source_time_text,
)
from tests.rules.conftest import SECOND, site

INT64 = st.integers(-(2**63), 2**63 - 1)
# What a source may claim: int64 and beyond (OPC UA's 9999-12-31 is ~2.5e20 ns).
SOURCE_TIMES = st.one_of(INT64, st.integers(-(10**22), 10**22))
FAULTS = settings(max_examples=120, deadline=None)
ON_DELAY_S = 3
RULES = [
    {"id": "hot", "asset": "p101", "sensor": "temp", "high": {"limit": 80}, "on_delay": "3s"},
    {"id": "no-flow", "asset": "p101", "sensor": "flow", "low": {"limit": -1}, "on_stale": "alarm"},
]


def summary(events: list[AlarmEvent]) -> list[tuple[Any, ...]]:
    return [(e.kind, e.rule_id, e.sensor_id, e.time_ns, e.alert_id, e.notify) for e in events]


@st.composite
def received_samples(draw: Any) -> list[tuple[int, str, float, int]]:
    """(received time, sensor, value, source time): received times never go back."""
    out = []
    t = 10 * SECOND
    for _ in range(draw(st.integers(1, 30))):
        t += draw(st.integers(0, 2 * SECOND))
        sensor = draw(st.sampled_from(["temp", "flow"]))
        out.append((t, sensor, draw(st.sampled_from([20.0, 90.0])), draw(SOURCE_TIMES)))
    return out


@FAULTS
@given(samples=received_samples(), tail=st.integers(0, 20 * SECOND))
def test_source_timestamps_change_nothing(
    samples: list[tuple[int, str, float, int]], tail: int
) -> None:
    """The same readings with any source timestamps give exactly the events of readings
    whose source time is their received time: no deadline early, no activation lost."""
    config = site(RULES)
    wild, honest = RuleEngine(config), RuleEngine(config)
    check = SourceTimeCheck(600 * SECOND)
    got: list[AlarmEvent] = []
    want: list[AlarmEvent] = []
    for received, sensor, value, source in samples:
        reading = Reading(sensor, value, Quality.GOOD, source, received_ns=received)
        check.check([reading], received)
        got += wild.feed(reading)
        want += honest.feed(Reading(sensor, value, Quality.GOOD, received, received_ns=received))
        assert source_time_text(source) is None or source_time_text(source)
    end = samples[-1][0] + tail
    got += wild.tick(end)
    want += honest.tick(end)
    assert summary(got) == summary(want)
    assert wild.snapshot()["now"] == end
    for event in got:
        if event.kind == "activated" and event.rule_id == "hot":
            assert event.started_ns is not None
            assert event.time_ns - event.started_ns == 0  # activation carries its own time
    for event in got:
        message = to_alert_message(event, config)  # every event still renders
        assert message is None or message["alert_id"] == event.alert_id


@FAULTS
@given(
    origin=st.integers(-(2**62), 2**62),
    saved_after=st.integers(0, ON_DELAY_S * SECOND - 1),
)
def test_a_restart_on_any_clock_fires_the_on_delay_exactly_on_time(
    origin: int, saved_after: int
) -> None:
    """Pending when saved, with ``ON_DELAY_S - saved_after`` left; restarted on a clock at
    ``origin`` (a monotonic clock after a reboot, anywhere): not a nanosecond early, and
    never lost."""
    config = site(RULES)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rule-state.json"
        first = RuleEngine(config, RuleStateStore(path))
        first.feed(Reading("temp", 90.0, Quality.GOOD, 0, received_ns=5 * SECOND))
        first.tick(5 * SECOND + saved_after)
        first.close()
        left = ON_DELAY_S * SECOND - saved_after
        second = RuleEngine(config, RuleStateStore(path), resume_at=origin)
        assert second.rule_states()["hot"] == "PENDING"
        assert second.tick(origin + left - 1) == []
        [activated] = second.tick(origin + left)
        assert (activated.kind, activated.rule_id, activated.time_ns) == (
            "activated",
            "hot",
            origin + left,
        )


@FAULTS
@given(steps=st.lists(INT64, min_size=1, max_size=20), saved=st.none() | INT64)
def test_wall_clock_steps_keep_durations_and_are_reported(
    steps: list[int], saved: int | None
) -> None:
    """Any wall clock: an event's wall times keep its duration, the clock check never
    raises and says "implausible" exactly when the clock is before the release or behind
    the saved state."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("edge_agent.service.agent_clock")
    logger.addHandler(handler)
    check = WallClockCheck(saved)
    event = AlarmEvent(7 * SECOND, "activated", "hot", "temp", started_ns=2 * SECOND)
    for wall in steps:
        offset = wall - 7 * SECOND
        moved = on_wall_clock(event, offset)
        assert moved.started_ns is not None
        assert moved.time_ns - moved.started_ns == 5 * SECOND
        reason = check.poll(wall)
        behind = saved is not None and wall < saved - SAVED_STATE_SLACK_NS
        assert (reason is not None) == (wall < RELEASE_TIME_NS or behind)
    logger.removeHandler(handler)
    assert check.implausible_total == sum(
        1 for r in records if r.getMessage().startswith("The system clock is implausible")
    )


def test_source_times_are_written_when_a_date_can_say_them() -> None:
    assert source_time_text(parse_time("9999-12-31T23:59:59Z")) == "9999-12-31T23:59:59Z"
    assert source_time_text(-(2**63)) == "1677-09-21T00:12:43.145224192Z"
    assert source_time_text(10**22) is None
    assert source_time_text(-(10**22)) is None
