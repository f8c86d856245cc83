"""Asset downtime from a running sensor: ``OFFLINE`` when it stops, ``ONLINE`` when it runs
again (issue 14). Pure, as every meter: readings in, status changes out, time taken from
the readings.

A change is reported once: the state (the status last reported and since when) is saved
with the meters' and restored at start, so a restart never reports the same change twice
and a change that happened while the agent was down is reported at the first reading after
it. Downtime is ``PLANNED`` when the caller says a maintenance work order of the asset is
in progress at the time it stops, ``UNPLANNED`` otherwise. A refused reading (bad quality,
no number, a clock going backwards) changes nothing.

``min_duration_ns`` debounces a toggling sensor: a new state is reported only once a
reading shows it held that long since it began, and reported with the time it began (so
MaintainX's downtime stays exact); a return to the reported state before that forgets it.
The pending change is saved with the rest, so a restart in the middle loses nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Final, Literal

from edge_agent.meters import state as saved
from edge_agent.meters.samples import Refusal, in_order, running_of
from edge_agent.readings import Reading

DOWNTIME_KIND: Final = "downtime"


@dataclass(frozen=True, slots=True)
class StatusChange:
    """The asset went ``OFFLINE`` (with its downtime type) or ``ONLINE`` at ``time_ns``."""

    asset: str
    status: Literal["ONLINE", "OFFLINE"]
    downtime_type: Literal["PLANNED", "UNPLANNED"] | None
    time_ns: int


class DowntimeTracker:
    """One asset's running state, as MaintainX was last told it."""

    def __init__(self, asset: str, min_duration_ns: int = 0) -> None:
        self.asset = asset
        self.min_duration_ns = max(0, min_duration_ns)
        self.status: Literal["ONLINE", "OFFLINE"] | None = None  # last reported
        self.since_ns: int | None = None
        # A change seen and not reported yet (held less than min_duration_ns so far).
        self.pending: Literal["ONLINE", "OFFLINE"] | None = None
        self.pending_ns: int | None = None
        self.pending_planned = False
        self.last_ns: int | None = None
        self.changes = 0
        self.behind = 0  # readings in a row before last_ns (the clock set back?)
        self.refused: Counter[Refusal] = Counter()

    def feed(self, reading: Reading, *, planned: bool = False) -> StatusChange | None:
        """Use one reading of the running sensor; the change to report, if it is one.
        ``planned``: a maintenance work order of the asset is in progress now."""
        running = running_of(reading, self.refused)
        if running is None:
            return None
        if not in_order(reading.time_ns, self.last_ns, self.refused, self.behind):
            self.behind += 1
            return None
        self.behind = 0
        self.last_ns = reading.time_ns
        status: Literal["ONLINE", "OFFLINE"] = "ONLINE" if running else "OFFLINE"
        if status == self.status:
            self.pending, self.pending_ns = None, None  # back before it held: no change
            return None
        if self.pending != status or self.pending_ns is None:
            self.pending, self.pending_ns, self.pending_planned = status, reading.time_ns, planned
        began_ns = self.pending_ns
        if reading.time_ns - began_ns < self.min_duration_ns:
            return None
        self.status, self.since_ns = status, began_ns
        self.pending, self.pending_ns = None, None
        self.changes += 1
        downtime: Literal["PLANNED", "UNPLANNED"] | None = None
        if status == "OFFLINE":
            downtime = "PLANNED" if self.pending_planned else "UNPLANNED"
        return StatusChange(self.asset, status, downtime, began_ns)

    def state(self) -> dict[str, Any]:
        return {
            "schema": saved.STATE_SCHEMA,
            "kind": DOWNTIME_KIND,
            "status": self.status,
            "since_ns": self.since_ns,
            "last_ns": self.last_ns,
            "changes": self.changes,
            "behind": self.behind,
            "pending": self.pending,
            "pending_ns": self.pending_ns,
            "pending_planned": self.pending_planned,
            "refused": {str(k): v for k, v in self.refused.items()},
        }

    def restore(self, state: Any) -> None:
        """Carry on from a saved :meth:`state` (raises MeterStateError, changing nothing)."""
        checked = saved.checked(state, DOWNTIME_KIND)
        behind = saved.optional_integer(checked, "behind") or 0
        status = checked.get("status")
        if status not in (None, "ONLINE", "OFFLINE"):
            raise saved.MeterStateError(f"status: ONLINE, OFFLINE or null, not {status!r}")
        since_ns = saved.optional_integer(checked, "since_ns")
        last_ns = saved.optional_integer(checked, "last_ns")
        changes = saved.integer(checked, "changes")
        # Saved by a release without the debounce: nothing pending.
        pending = checked.get("pending")
        if pending not in (None, "ONLINE", "OFFLINE"):
            raise saved.MeterStateError(f"pending: ONLINE, OFFLINE or null, not {pending!r}")
        pending_ns = saved.optional_integer(checked, "pending_ns")
        if (pending is None) != (pending_ns is None):
            raise saved.MeterStateError("pending and pending_ns: both or neither")
        pending_planned = checked.get("pending_planned", False)
        if not isinstance(pending_planned, bool):
            raise saved.MeterStateError(f"pending_planned: true or false, not {pending_planned!r}")
        refused = saved.refusals(saved.counts(checked))
        self.status, self.since_ns, self.last_ns = status, since_ns, last_ns
        self.changes, self.refused = changes, refused
        self.behind = behind
        self.pending, self.pending_ns, self.pending_planned = pending, pending_ns, pending_planned
