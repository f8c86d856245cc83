"""Time units, defined once: timestamps and durations travel as integer nanoseconds (the
site file's ``30s`` is ``30 * NS_PER_S``), and the clocks of asyncio speak float seconds."""

from __future__ import annotations

from typing import Final

NS_PER_US: Final = 1_000
NS_PER_MS: Final = 1_000_000
NS_PER_S: Final = 1_000_000_000
NS_PER_MINUTE: Final = 60 * NS_PER_S
NS_PER_HOUR: Final = 3600 * NS_PER_S
NS_PER_DAY: Final = 86400 * NS_PER_S


def elapsed_text(ns: int) -> str:
    """How long something has lasted, for people, to the second: ``"12m30s"``, ``"2h5s"``,
    ``"3d4h"``; ``"0s"`` under a second or when a clock stepped back (a negative span)."""
    seconds = max(ns, 0) // NS_PER_S
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
