"""Readings as a running sensor or a counter register gives them, for the meter tests."""

from __future__ import annotations

import json
from typing import Any, Protocol

from hypothesis import strategies as st

from edge_agent.meters import MeterReading
from edge_agent.readings import Quality, Reading, Value

SECOND = 1_000_000_000


def reading(value: Value, time_ns: int, quality: Quality = Quality.GOOD) -> Reading:
    return Reading("sensor", value, quality, time_ns)


class Meter(Protocol):
    def feed(self, reading: Reading) -> MeterReading | None: ...
    def state(self) -> dict[str, Any]: ...
    def restore(self, state: Any) -> None: ...


def through_json(meter: Meter) -> Any:
    """The meter's state as it comes back from a file: JSON text and back."""
    return json.loads(json.dumps(meter.state(), allow_nan=False))


# Poll intervals of a few seconds, sometimes a long silence (the agent down, a dead link).
intervals = st.one_of(
    st.integers(min_value=0, max_value=10 * SECOND),
    st.integers(min_value=10 * SECOND, max_value=3600 * SECOND),
)
