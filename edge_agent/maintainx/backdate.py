"""MaintainX's rule that an automated meter's reading may be back-dated by at most 3 days,
applied before a batch leaves (issue 14). Pure: the caller gives the time.

After an outage longer than that, what is older is reduced to what still matters:

- a **cumulative** meter (counter, run hours, starts) keeps its latest value, re-dated just
  inside the window (its total is all MaintainX's PM triggers need); when the same batch
  also holds a value of that meter inside the window, the old ones are simply superseded;
- a **gauge**'s history beyond the window is not sent: counted and logged by the caller
  (a temperature of four days ago is no condition to act on now).

Shared by the site's direct forwarder and the hub (both post ``/meterreadings``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

from edge_agent.wire.plant import CUMULATIVE_KINDS, MeterReadingMessage

NS_PER_HOUR: Final = 3_600_000_000_000
BACKDATE_LIMIT_NS: Final = 72 * NS_PER_HOUR
"""How far MaintainX lets an automated meter's reading be back-dated."""
INSIDE_MARGIN_NS: Final = NS_PER_HOUR
"""A re-dated value is dated this far inside the window: a MaintainX clock up to an hour
ahead of ours still takes it."""

Item = TypeVar("Item")


@dataclass
class Reduction(Generic[Item]):
    """What to send (each item with the time to send it at), and what is not sent."""

    send: list[tuple[Item, int]] = field(default_factory=list)
    superseded: list[Item] = field(default_factory=list)
    """Older values of a cumulative meter that a later one in the batch replaces."""
    gauges_dropped: list[Item] = field(default_factory=list)
    """Gauge values older than the window: never sent."""
    redated: int = 0
    """Cumulative values sent with a date moved inside the window."""


def window_start_ns(now_ns: int) -> int:
    """The oldest date a reading is sent with (``now`` − 3 days + the margin)."""
    return now_ns - BACKDATE_LIMIT_NS + INSIDE_MARGIN_NS


def reduce_stale(
    entries: Sequence[tuple[Item, MeterReadingMessage]], now_ns: int
) -> Reduction[Item]:
    """The batch made fit for the 3-day rule, in its order (see the module doc)."""
    start = window_start_ns(now_ns)
    fresh_meters = {m.meter for _, m in entries if m.time_ns >= start}
    # The latest value beyond the window of each cumulative meter with none inside it.
    latest: dict[str, int] = {}
    for index, (_, message) in enumerate(entries):
        stale = message.time_ns < start and message.kind in CUMULATIVE_KINDS
        if stale and message.meter not in fresh_meters:
            best = latest.get(message.meter)
            if best is None or entries[best][1].time_ns <= message.time_ns:
                latest[message.meter] = index
    kept = set(latest.values())
    reduction: Reduction[Item] = Reduction()
    for index, (item, message) in enumerate(entries):
        if message.time_ns >= start:
            reduction.send.append((item, message.time_ns))
        elif message.kind not in CUMULATIVE_KINDS:
            reduction.gauges_dropped.append(item)
        elif index in kept:
            reduction.send.append((item, start))
            reduction.redated += 1
        else:
            reduction.superseded.append(item)
    return reduction
