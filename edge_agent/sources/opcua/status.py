"""OPC UA status codes and timestamps in the project's terms (pure: no asyncua import).

A status code's two top bits are its severity (OPC UA Part 4, 7.39): ``00`` good, ``01``
uncertain, ``10``/``11`` bad.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from edge_agent.common.time_units import NS_PER_DAY, NS_PER_S, NS_PER_US
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


#: The Unix epoch, aware and naive: made once, not per timestamp (that was most of the cost).
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH: Final = datetime(1970, 1, 1)


def datetime_to_ns(moment: datetime | None) -> int | None:
    """UTC nanoseconds since the epoch; ``None`` for a missing timestamp.

    OPC UA's "no timestamp" is 1601-01-01 (DateTime 0); that is treated as missing too.
    Naive datetimes are UTC (asyncua has returned both kinds across versions).
    """
    if moment is None or moment.year <= 1601:
        return None
    delta = moment - (_NAIVE_EPOCH if moment.tzinfo is None else EPOCH)
    return delta.days * NS_PER_DAY + delta.seconds * NS_PER_S + delta.microseconds * NS_PER_US


def pick_time_ns(source: datetime | None, server: datetime | None, local_ns: int) -> int:
    """SourceTimestamp if the server sent one, else ServerTimestamp, else the local clock."""
    ns = datetime_to_ns(source)
    if ns is None:
        ns = datetime_to_ns(server)
    return local_ns if ns is None else ns


#: OPC UA DateTime ticks (100 ns since 1601-01-01 UTC): the Unix epoch, the first tick
#: past 1601 (earlier is "no timestamp", as above), and the first that asyncua takes for
#: 9999-12-31 23:59:59 (its ceiling).
_EPOCH_TICKS_US: Final = 11_644_473_600 * 1_000_000
_FIRST_TICK_AFTER_1601: Final = 365 * 86_400 * 10_000_000
_CEILING_TICKS: Final = (
    int((datetime(9999, 12, 31, 23, 59, 59) - datetime(1601, 1, 1)).total_seconds()) * 10_000_000
)
_CEILING_NS: Final = (_CEILING_TICKS // 10 - _EPOCH_TICKS_US) * NS_PER_US


def ticks_to_ns(ticks: int | None) -> int | None:
    """:func:`datetime_to_ns` of the datetime asyncua makes of an OPC UA DateTime (its
    ``win_epoch_to_datetime``: microseconds, a ceiling at 9999, 1601 for anything before),
    without making it; ``None`` for a missing timestamp."""
    if ticks is None or ticks < _FIRST_TICK_AFTER_1601:
        return None
    if ticks >= _CEILING_TICKS:
        return _CEILING_NS
    return (ticks // 10 - _EPOCH_TICKS_US) * NS_PER_US
