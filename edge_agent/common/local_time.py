"""Times as people at the plant read them: to the second, in the site's time zone.

Messages on the wire stay RFC 3339 UTC with nanoseconds; this is only for text a person
reads (work-order titles and descriptions).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import lru_cache

from edge_agent.common.time_units import NS_PER_S


@lru_cache(maxsize=16)
def zone(name: str) -> dt.tzinfo:
    """The zone called ``name`` (``UTC`` needs no time zone database); ValueError if unknown."""
    if name in ("UTC", "Etc/UTC", "Z"):
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"{name!r} is not a known time zone; write an IANA name such as Europe/Berlin or "
            "America/Chicago (the gateway needs its tzdata package for zones other than UTC)"
        ) from exc


def local_text(time_ns: int, zone_name: str, *, strict: bool = False) -> str:
    """``2026-01-05 11:00:30 CET`` (to the second); the raw nanoseconds if out of range.
    ``strict``: an unknown zone raises ValueError instead (the caller picks another)."""
    tz = zone(zone_name) if strict else None
    try:
        moment = dt.datetime.fromtimestamp(time_ns // NS_PER_S, tz or zone(zone_name))
    except (ValueError, OverflowError, OSError):
        return f"{time_ns} ns"
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")
