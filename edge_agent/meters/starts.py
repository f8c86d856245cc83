"""Starts: the rising edges of a running sensor (stopped, then running), counted.

The first reading the meter ever uses has nothing before it and is not a start; after a
restart the saved state remembers what the sensor last said, so a machine that started
while the agent was down is counted once, at the first reading after it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from edge_agent.meters import state as saved
from edge_agent.meters.samples import Refusal, in_order, running_of
from edge_agent.meters.send import MeterReading, SendPolicy
from edge_agent.readings import Reading


class StartsMeter:
    """How many times a machine started."""

    kind = "starts"

    def __init__(self, name: str, *, every_ns: int, start: int = 0) -> None:
        if every_ns <= 0:
            raise ValueError("every_ns must be positive")
        self.name = name
        self.starts = start
        self.last_running: bool | None = None
        self.last_ns: int | None = None
        self.behind = 0  # readings in a row before last_ns (the clock set back?)
        self.refused: Counter[Refusal] = Counter()
        self.send = SendPolicy(every_ns, deadband=None, send_unchanged=False)

    def feed(self, reading: Reading) -> MeterReading | None:
        """Use one reading of the running sensor; the value to send, if one is due."""
        running = running_of(reading, self.refused)
        if running is None:
            return None
        if not in_order(reading.time_ns, self.last_ns, self.refused, self.behind):
            self.behind += 1
            return None
        self.behind = 0
        if running and self.last_running is False:
            self.starts += 1
        self.last_running, self.last_ns = running, reading.time_ns
        return self.send.offer(self.name, float(self.starts), reading.time_ns)

    def state(self) -> dict[str, Any]:
        return {
            "schema": saved.STATE_SCHEMA,
            "kind": self.kind,
            "starts": self.starts,
            "last_running": self.last_running,
            "last_ns": self.last_ns,
            "behind": self.behind,
            "refused": {str(k): v for k, v in self.refused.items()},
            "send": self.send.state(),
        }

    def restore(self, state: Any) -> None:
        """Carry on from a saved :meth:`state` (raises MeterStateError, changing nothing)."""
        checked = saved.checked(state, self.kind)
        behind = saved.optional_integer(checked, "behind") or 0
        starts = saved.integer(checked, "starts")
        last_running = saved.flag(checked, "last_running")
        last_ns = saved.optional_integer(checked, "last_ns")
        refused = saved.refusals(saved.counts(checked))
        send = saved.mapping(checked, "send")
        self.starts, self.last_running, self.last_ns = starts, last_running, last_ns
        self.refused = refused
        self.send.restore(send)
        self.behind = behind
