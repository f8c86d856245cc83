"""A meters.json damaged in its numbers (NaN, infinities, negatives, integers beyond 64
bits: a disk fault, a hand edit) is refused meter by meter, never restored: a NaN total
stuck forever, a negative one went backwards, a 10**400 ns total overflowed at the next
reading and stopped the meter for good."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge_agent.meters import CounterMeter, MeterStateError, RunHours, StartsMeter
from edge_agent.meters.send import SendPolicy
from tests.meters.conftest import SECOND, reading


def saved(meter: Any, **changes: Any) -> Any:
    state = json.loads(json.dumps(meter.state()))
    state.update(changes)
    return json.loads(json.dumps(state))  # NaN and Infinity go through json as Python's do


@pytest.mark.parametrize("total", [float("nan"), float("inf"), -5.0, 1e308])
def test_a_counter_total_out_of_range_is_refused(total: float) -> None:
    meter = CounterMeter("c", every_ns=SECOND, bits=32)
    meter.feed(reading(10, SECOND))
    with pytest.raises(MeterStateError, match="total"):
        meter.restore(saved(meter, total=total))
    assert meter.total == 0  # nothing half restored


@pytest.mark.parametrize("running_ns", [-1, 10**400, 2**63])
def test_run_hours_out_of_range_are_refused(running_ns: int) -> None:
    hours = RunHours("h", max_gap_ns=SECOND, every_ns=SECOND)
    with pytest.raises(MeterStateError, match="running_ns"):
        hours.restore(saved(hours, running_ns=running_ns))


def test_negative_starts_are_refused() -> None:
    starts = StartsMeter("s", every_ns=SECOND)
    with pytest.raises(MeterStateError, match="starts"):
        starts.restore(saved(starts, starts=-3))


@pytest.mark.parametrize("last_value", [float("nan"), float("inf"), "x", True])
def test_a_damaged_last_sent_value_is_forgotten(last_value: object) -> None:
    policy = SendPolicy(60 * SECOND, deadband=1.0)
    policy.restore({"last_value": last_value, "last_ns": 5})
    assert policy.last_value is None
    assert policy.offer("g", 20.0, 10) is not None  # sent again at once
