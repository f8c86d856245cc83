"""Run hours integrated at the edge from a running sensor, exact to the poll.

Time counts from a reading that saw the machine running to the next reading the meter
uses, whatever that one says: the machine is known to have run from the first, and nothing
is known between two polls. A gap longer than ``max_gap_ns`` (the agent stopped, the
sensor could not be read) counts nothing: a reading after a long silence does not turn the
silence into run time. Time is integer nanoseconds on the caller's axis (it must be one
that survives a restart, e.g. the wall clock of the readings, for the total to span one),
so the sum is exact; the state is a small JSON object, saved after each change and restored
on start, and a run cut at any reading, saved and restored gives the same total.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from edge_agent.meters import state as saved
from edge_agent.meters.samples import Refusal, in_order, running_of
from edge_agent.meters.send import MeterReading, SendPolicy
from edge_agent.readings import Reading

NS_PER_HOUR = 3_600_000_000_000


class RunHours:
    """The run hours of one machine (``name``: the meter's name in the site file)."""

    kind = "run_hours"

    def __init__(
        self, name: str, *, max_gap_ns: int, every_ns: int, start_hours: float = 0
    ) -> None:
        if max_gap_ns <= 0 or every_ns <= 0:
            raise ValueError("max_gap_ns and every_ns must be positive")
        self.name = name
        self.max_gap_ns = max_gap_ns
        self.running_ns = round(start_hours * NS_PER_HOUR)
        self.last_ns: int | None = None  # the last reading used
        self.last_running: bool | None = None  # what it said
        self.gaps = 0  # intervals longer than max_gap_ns, not counted
        self.behind = 0  # readings in a row before last_ns (the clock set back?)
        self.refused: Counter[Refusal] = Counter()
        self.send = SendPolicy(every_ns, deadband=None, send_unchanged=False)

    @property
    def hours(self) -> float:
        return self.running_ns / NS_PER_HOUR

    def feed(self, reading: Reading) -> MeterReading | None:
        """Use one reading of the running sensor; the value to send, if one is due."""
        running = running_of(reading, self.refused)
        time_ns = reading.time_ns
        if running is None:
            return None
        if not in_order(time_ns, self.last_ns, self.refused, self.behind):
            self.behind += 1
            return None
        self.behind = 0
        if self.last_ns is not None and self.last_running:
            interval = time_ns - self.last_ns
            if 0 <= interval <= self.max_gap_ns:  # negative: the clock was set back
                self.running_ns += interval
            else:
                self.gaps += 1
        self.last_ns, self.last_running = time_ns, running
        return self.send.offer(self.name, self.hours, time_ns)

    def state(self) -> dict[str, Any]:
        """Everything needed to carry on after a restart, as JSON-ready data."""
        return {
            "schema": saved.STATE_SCHEMA,
            "kind": self.kind,
            "running_ns": self.running_ns,
            "last_ns": self.last_ns,
            "last_running": self.last_running,
            "gaps": self.gaps,
            "behind": self.behind,
            "refused": {str(k): v for k, v in self.refused.items()},
            "send": self.send.state(),
        }

    def restore(self, state: Any) -> None:
        """Carry on from a saved :meth:`state` (raises MeterStateError, changing nothing)."""
        checked = saved.checked(state, self.kind)
        behind = saved.optional_integer(checked, "behind") or 0
        running_ns = saved.integer(checked, "running_ns")
        last_ns = saved.optional_integer(checked, "last_ns")
        last_running = saved.flag(checked, "last_running")
        gaps = saved.integer(checked, "gaps")
        refused = saved.counts(checked)
        send = saved.mapping(checked, "send")
        self.running_ns, self.last_ns, self.last_running = running_ns, last_ns, last_running
        self.gaps = gaps
        self.refused = saved.refusals(refused)
        self.send.restore(send)
        self.behind = behind
