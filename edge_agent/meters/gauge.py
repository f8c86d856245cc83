"""A gauge: a sensor's value as it is (a temperature, a pressure), sent every ``every`` or
sooner when it moved by more than ``deadband`` since the value last sent."""

from __future__ import annotations

from collections import Counter
from typing import Any

from edge_agent.meters import state as saved
from edge_agent.meters.samples import Refusal, in_order, number_of
from edge_agent.meters.send import MeterReading, SendPolicy
from edge_agent.readings import Reading
from edge_agent.wire.plant import MAX_VALUE


class GaugeMeter:
    """A sensor's value, sampled for MaintainX."""

    kind = "gauge"

    def __init__(self, name: str, *, every_ns: int, deadband: float | None = None) -> None:
        if every_ns <= 0:
            raise ValueError("every_ns must be positive")
        if deadband is not None and deadband < 0:
            raise ValueError("deadband must not be negative")
        self.name = name
        self.last_ns: int | None = None
        self.behind = 0  # readings in a row before last_ns (the clock set back?)
        self.refused: Counter[Refusal] = Counter()
        self.send = SendPolicy(every_ns, deadband=deadband, send_unchanged=True)

    def feed(self, reading: Reading) -> MeterReading | None:
        """Use one reading of the sensor; the value to send, if one is due."""
        value = number_of(reading, self.refused)
        if value is None:
            return None
        if abs(value) > MAX_VALUE:  # no plant data message could carry it
            self.refused[Refusal.OUT_OF_RANGE] += 1
            return None
        if not in_order(reading.time_ns, self.last_ns, self.refused, self.behind):
            self.behind += 1
            return None
        self.behind = 0
        self.last_ns = reading.time_ns
        return self.send.offer(self.name, float(value), reading.time_ns)

    def state(self) -> dict[str, Any]:
        return {
            "schema": saved.STATE_SCHEMA,
            "kind": self.kind,
            "last_ns": self.last_ns,
            "behind": self.behind,
            "refused": {str(k): v for k, v in self.refused.items()},
            "send": self.send.state(),
        }

    def restore(self, state: Any) -> None:
        """Carry on from a saved :meth:`state` (raises MeterStateError, changing nothing)."""
        checked = saved.checked(state, self.kind)
        behind = saved.optional_integer(checked, "behind") or 0
        last_ns = saved.optional_integer(checked, "last_ns")
        refused = saved.refusals(saved.counts(checked))
        send = saved.mapping(checked, "send")
        self.last_ns, self.refused = last_ns, refused
        self.send.restore(send)
        self.behind = behind
