"""When a meter's value becomes a reading for MaintainX: every ``every``, or sooner on a
change beyond ``deadband`` (gauges); cumulative meters send only a value that moved."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MeterReading:
    """A value to send: the meter's name, its value and the time it holds for."""

    meter: str
    value: float
    time_ns: int


@dataclass
class SendPolicy:
    """Decides which values are sent.

    ``every_ns``: the longest time between two sent values. ``deadband``: a change larger
    than this is sent at once (None: never early). ``send_unchanged``: whether a value
    equal to the last one sent is sent again when ``every_ns`` has passed (a gauge's
    heartbeat: yes; a counter that has not moved: no).
    """

    every_ns: int
    deadband: float | None = None
    send_unchanged: bool = True
    last_value: float | None = None
    last_ns: int | None = None

    def offer(self, meter: str, value: float, time_ns: int) -> MeterReading | None:
        """The reading to send for this value at this time, if any."""
        if self.last_value is None or self.last_ns is None:
            return self._sent(meter, value, time_ns)
        if time_ns < self.last_ns:
            # The clock was set back (the meter confirmed it): waiting for ``every`` from a
            # time ahead of it would send nothing until the clock caught up.
            return self._sent(meter, value, time_ns)
        changed = value != self.last_value
        if self.deadband is not None and abs(value - self.last_value) > self.deadband:
            return self._sent(meter, value, time_ns)
        if time_ns - self.last_ns >= self.every_ns and (changed or self.send_unchanged):
            return self._sent(meter, value, time_ns)
        return None

    def _sent(self, meter: str, value: float, time_ns: int) -> MeterReading:
        self.last_value, self.last_ns = value, time_ns
        return MeterReading(meter, value, time_ns)

    def state(self) -> dict[str, float | int | None]:
        return {"last_value": self.last_value, "last_ns": self.last_ns}

    def restore(self, state: dict[str, object]) -> None:
        last_value, last_ns = state.get("last_value"), state.get("last_ns")
        # A damaged value is forgotten (the next one is sent), never restored: NaN or an
        # infinity would stop the deadband and period checks from ever sending again.
        self.last_value = None
        number = isinstance(last_value, int | float) and not isinstance(last_value, bool)
        if number and isinstance(last_value, int | float) and math.isfinite(last_value):
            self.last_value = float(last_value)
        self.last_ns = None
        if isinstance(last_ns, int) and 0 <= last_ns < 2**63:
            self.last_ns = last_ns
