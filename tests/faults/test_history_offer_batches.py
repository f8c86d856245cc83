"""The history recorder's on-change filter over whole batches of many sensors (a big
subscription's shape): it keeps exactly the rows ``_changed`` says, sensor by sensor, in
order, and a full buffer drops (and counts) the rest without forgetting what was seen."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.config.models import History
from edge_agent.history import recorder as recorder_module
from edge_agent.history.recorder import HistoryRecorder
from edge_agent.readings import Quality, Reading, Value

S = 1_000_000_000

_VALUES = st.one_of(
    st.floats(),  # NaN and ±inf included
    st.sampled_from([0.0, 1.0, 1.0 + 1e-12, -0.0, 1e300]),  # equal, within the deadband
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)
_BATCHES = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=45 * S),  # to the batch: heartbeats included
        st.lists(
            st.tuples(st.sampled_from(["a", "b", "c"]), _VALUES, st.sampled_from(Quality)),
            max_size=12,
        ),
    ),
    max_size=8,
)


def expected_rows(
    batches: list[tuple[int, list[tuple[str, Value, Quality]]]], limit: int
) -> tuple[list[tuple[str, int, Value, Quality]], int]:
    """What ``_changed`` alone keeps, and how many of those a buffer of ``limit`` drops."""
    last: dict[str, tuple[Value, Quality, int]] = {}
    rows: list[tuple[str, int, Value, Quality]] = []
    dropped = 0
    at = 0
    for step, batch in batches:
        at += step
        for sensor, value, quality in batch:
            seen = last.get(sensor)
            if seen is None or recorder_module._changed(
                seen, Reading(sensor, value, quality, 0), at
            ):
                last[sensor] = (value, quality, at)
                if len(rows) >= limit:
                    dropped += 1
                else:
                    rows.append((sensor, at, value, quality))
    return rows, dropped


def same(kept: Value, expected: Value) -> bool:
    if isinstance(kept, float) and isinstance(expected, float) and math.isnan(expected):
        return math.isnan(kept)
    return type(kept) is type(expected) and kept == expected


@settings(max_examples=300, deadline=None)
@given(batches=_BATCHES, limit=st.sampled_from([3, 10, 10_000]))
def test_batches_of_many_sensors_keep_what_changed_says(
    tmp_path_factory: pytest.TempPathFactory,
    batches: list[tuple[int, list[tuple[str, Value, Quality]]]],
    limit: int,
) -> None:
    history = HistoryRecorder(tmp_path_factory.mktemp("history"), History())
    at = 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recorder_module, "MAX_BUFFERED", limit)
        for step, batch in batches:
            at += step
            history.offer([Reading(s, v, q, 0) for s, v, q in batch], at)
    rows, dropped = expected_rows(batches, limit)
    kept = [(r.sensor, r.time_ns, r.value, r.quality) for r in history._buffer]
    assert [(s, t, q) for s, t, _, q in kept] == [(s, t, q) for s, t, _, q in rows]
    assert all(same(k[2], e[2]) for k, e in zip(kept, rows, strict=True))
    assert history.dropped == dropped


def test_a_float_moving_within_the_deadband_is_no_change(tmp_path: Path) -> None:
    history = HistoryRecorder(tmp_path, History())
    history.offer([Reading("a", 1e6, Quality.GOOD, 0), Reading("b", 0.5, Quality.GOOD, 0)], 0)
    # 1e-9 of the value (at least of 1.0): float noise, not a change
    history.offer(
        [Reading("a", 1e6 + 1e-4, Quality.GOOD, 0), Reading("b", 0.5 + 1e-10, Quality.GOOD, 0)],
        S,
    )
    history.offer(
        [Reading("a", 1e6 + 1e-2, Quality.GOOD, 0), Reading("b", 0.5 + 1e-8, Quality.GOOD, 0)],
        2 * S,
    )
    assert [(r.sensor, r.time_ns) for r in history._buffer] == [
        ("a", 0),
        ("b", 0),
        ("a", 2 * S),
        ("b", 2 * S),
    ]
