"""``SourceTimeCheck`` looks at a batch's source times in one pass when no sensor is out of
bounds: it must count and log exactly what a look at every reading does, at the bounds
too, across batches that take a sensor out and bring it back."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.readings import Quality, Reading
from edge_agent.service.agent_clock import SourceTimeCheck
from edge_agent.service.agent_clock import log as clock_log

SKEW = 1_000
WALL = 10**18


class _EveryReading(SourceTimeCheck):
    """The check as it was: one comparison per reading, no batch pass."""

    def check(self, readings: Sequence[Reading], wall_ns: int) -> None:
        skew, out = self.skew_ns, self._out
        for reading in readings:
            source = reading.source_time_ns
            if -skew <= source - wall_ns <= skew:
                if out and reading.sensor_id in out:
                    out.discard(reading.sensor_id)
                    clock_log.info(
                        "Source timestamps of this sensor are plausible again.",
                        extra={"sensor": reading.sensor_id},
                    )
                continue
            sensor = reading.sensor_id
            self.implausible[sensor] = self.implausible.get(sensor, 0) + 1
            if sensor not in out:
                out.add(sensor)
                clock_log.warning("Source timestamp is far", extra={"sensor": sensor})


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.levelno, getattr(record, "sensor", "")))


@contextmanager
def _recorded() -> Iterator[_Records]:
    handler = _Records()
    clock_log.addHandler(handler)
    level = clock_log.level
    clock_log.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        clock_log.removeHandler(handler)
        clock_log.setLevel(level)


# Offsets from the wall clock: the bounds themselves, just past them, far off, and the
# usual case of one time shared by the batch.
offsets = st.sampled_from([0, 1, -1, SKEW, -SKEW, SKEW + 1, -SKEW - 1, 10**12, -(10**12)])
batches = st.lists(
    st.lists(st.tuples(st.sampled_from("abcd"), offsets), max_size=8),
    max_size=10,
)


def _run(check: SourceTimeCheck, steps: list[list[tuple[str, int]]]) -> tuple[object, ...]:
    with _recorded() as records:
        for index, batch in enumerate(steps):
            wall = WALL + index
            readings = [Reading(s, 1, Quality.GOOD, wall + offset) for s, offset in batch]
            check.check(readings, wall)
    return dict(check.implausible), set(check._out), records.seen


@settings(max_examples=300, deadline=None)
@given(batches)
def test_the_batch_pass_counts_and_logs_what_every_reading_does(
    steps: list[list[tuple[str, int]]],
) -> None:
    assert _run(SourceTimeCheck(SKEW), steps) == _run(_EveryReading(SKEW), steps)


def test_one_time_out_of_many_in_bounds_is_still_counted() -> None:
    check = SourceTimeCheck(SKEW)
    readings = [Reading(f"s{i}", 1, Quality.GOOD, WALL) for i in range(50)]
    readings.append(Reading("late", 1, Quality.GOOD, WALL - SKEW - 1))
    check.check(readings, WALL)
    assert check.implausible == {"late": 1} and check._out == {"late"}
    check.check([Reading("late", 1, Quality.GOOD, WALL + SKEW)], WALL)
    assert check._out == set()
