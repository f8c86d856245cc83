"""OPC UA status codes and timestamps in the project's terms (pure: no asyncua import).

A status code's two top bits are its severity (OPC UA Part 4, 7.39): ``00`` good, ``01``
uncertain, ``10``/``11`` bad.
"""

from __future__ import annotations

from datetime import UTC, datetime

from edge_agent.readings import Quality

_SEVERITY_SHIFT = 30


def quality_of(status_code: int) -> Quality:
    """The quality an OPC UA status code stands for."""
    severity = (status_code >> _SEVERITY_SHIFT) & 0b11
    if severity == 0:
        return Quality.GOOD
    if severity == 1:
        return Quality.UNCERTAIN
    return Quality.BAD


def datetime_to_ns(moment: datetime | None) -> int | None:
    """UTC nanoseconds since the epoch; ``None`` for a missing timestamp.

    OPC UA's "no timestamp" is 1601-01-01 (DateTime 0); that is treated as missing too.
    Naive datetimes are UTC (asyncua has returned both kinds across versions).
    """
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment.year <= 1601:
        return None
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def pick_time_ns(source: datetime | None, server: datetime | None, local_ns: int) -> int:
    """SourceTimestamp if the server sent one, else ServerTimestamp, else the local clock."""
    for moment in (source, server):
        ns = datetime_to_ns(moment)
        if ns is not None:
            return ns
    return local_ns
