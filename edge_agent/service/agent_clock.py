"""The running agent's clocks: one monotonic clock for the rules, the wall clock for people.

- The rules run on :func:`now_ns` (``time.monotonic_ns``): readings are stamped with it when
  they reach the agent and the engine is ticked with it, so neither a source's timestamp
  nor a wall-clock step (NTP, an operator, a gateway without a real-time clock) can move an
  on/off delay, a staleness, a cooldown or a chattering window.
- Alert messages say wall-clock times: an event's monotonic time is turned into one at the
  moment the message is made (:func:`on_wall_clock`).
- :class:`SourceTimeCheck` reports sources whose own timestamps are far from the agent's
  wall clock (the reading is used anyway, on the agent's time).
- :class:`WallClockCheck` says when the wall clock itself cannot be right: before this
  release was made, or behind the time the rule state was last saved.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import time
from collections.abc import Sequence
from typing import Final

from edge_agent.alerts import format_time_ns, parse_time
from edge_agent.common.time_units import NS_PER_MINUTE
from edge_agent.readings import Reading
from edge_agent.rules.events import AlarmEvent

log = logging.getLogger(__name__)

RELEASE_TIME_NS: Final = parse_time("2026-12-01T00:00:00Z")
"""No wall clock running this release can be earlier than this (update it with each
release): a gateway that booted without a real-time clock usually says 1970 or its image's
date until NTP syncs."""

SAVED_STATE_SLACK_NS: Final = NS_PER_MINUTE
"""How far behind the saved state's wall time the clock may be (a small NTP correction
after a restart is not a fault)."""


def now_ns() -> int:
    """The rules' clock: monotonic, in ns (restarts at boot; saved state is re-anchored)."""
    return time.monotonic_ns()


def wall_offset_ns() -> int:
    """What to add to a :func:`now_ns` time to get the wall-clock time, as of now."""
    return time.time_ns() - time.monotonic_ns()


def on_wall_clock(event: AlarmEvent, offset_ns: int) -> AlarmEvent:
    """``event`` with its times on the wall clock (``offset_ns`` from :func:`wall_offset_ns`).
    Durations between them are kept, whatever the wall clock did in between."""
    started = event.started_ns
    return dataclasses.replace(
        event,
        time_ns=event.time_ns + offset_ns,
        started_ns=None if started is None else started + offset_ns,
    )


def source_time_text(source_time_ns: int) -> str | None:
    """A source timestamp as RFC 3339 for an alert message, or None if no date can say it
    (a source may send anything in int64 range)."""
    try:
        return format_time_ns(source_time_ns)
    except (ValueError, OverflowError, OSError):
        return None


_source_time: Final = operator.attrgetter("source_time_ns")


class SourceTimeCheck:
    """Counts readings whose source timestamp is more than ``skew_ns`` from the wall clock,
    per sensor, and logs once per sensor each time it goes out of bounds (and once when it
    is back). The readings are used anyway: the rules never run on source time."""

    def __init__(self, skew_ns: int) -> None:
        self.skew_ns = skew_ns
        self.implausible: dict[str, int] = {}
        self._out: set[str] = set()

    def check(self, readings: Sequence[Reading], wall_ns: int) -> None:
        skew = self.skew_ns
        out = self._out
        if not out and readings:
            # A poll's readings share one source time (or a few): one pass in C over the
            # batch's times instead of a comparison per reading. With every time in bounds
            # and no sensor out before, the loop below would count and log nothing.
            times = set(map(_source_time, readings))
            if -skew <= min(times) - wall_ns and max(times) - wall_ns <= skew:
                return
        for reading in readings:
            source = reading.source_time_ns
            if -skew <= source - wall_ns <= skew:
                if out and reading.sensor_id in out:
                    out.discard(reading.sensor_id)
                    log.info(
                        "Source timestamps of this sensor are plausible again.",
                        extra={"sensor": reading.sensor_id},
                    )
                continue
            sensor = reading.sensor_id
            self.implausible[sensor] = self.implausible.get(sensor, 0) + 1
            if sensor not in out:
                out.add(sensor)
                log.warning(
                    "Source timestamp is far from the agent's clock; the reading is used on "
                    "the agent's time.",
                    extra={
                        "sensor": sensor,
                        "source_time_ns": source,
                        "agent_time_ns": wall_ns,
                        "skew_s": round((source - wall_ns) / 1e9, 3),
                        "limit_s": skew / 1e9,
                    },
                )


class WallClockCheck:
    """Whether the wall clock can be right: not before :data:`RELEASE_TIME_NS`, not behind
    ``saved_wall_ns`` (when the rule state was last saved, before this start). Logs each
    change once; :meth:`problem` is the ``/readyz`` reason while it lasts."""

    def __init__(self, saved_wall_ns: int | None, release_ns: int = RELEASE_TIME_NS) -> None:
        self.saved_wall_ns = saved_wall_ns
        self.release_ns = release_ns
        self.reason: str | None = None
        self.implausible_total = 0

    def poll(self, wall_ns: int | None = None) -> str | None:
        """Check the clock now; returns the problem, if any."""
        wall = time.time_ns() if wall_ns is None else wall_ns
        reason: str | None = None
        if wall < self.release_ns:
            reason = (
                "system clock is implausible: it is before this release was made; "
                "set up time synchronisation (chrony or systemd-timesyncd)"
            )
        elif self.saved_wall_ns is not None and wall < self.saved_wall_ns - SAVED_STATE_SLACK_NS:
            reason = (
                "system clock is implausible: it is behind the time the rule state was "
                "saved; check time synchronisation"
            )
        if reason is not None and self.reason is None:
            self.implausible_total += 1
            log.error(
                "The system clock is implausible; alert times may be wrong until it is set. "
                "Alarm timing is not affected.",
                extra={
                    "wall_time_ns": wall,
                    "release_time_ns": self.release_ns,
                    "saved_state_wall_ns": self.saved_wall_ns,
                },
            )
        elif reason is None and self.reason is not None:
            log.info("The system clock is plausible again.", extra={"wall_time_ns": wall})
        self.reason = reason
        return reason
