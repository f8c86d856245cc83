"""Plant data the plant-data outbox refused (full: its cap, a full disk), held by the meters
stage until there is room, within a bound. Pure."""

from __future__ import annotations

from typing import Any, Final

HELD_LIMIT: Final = 10_000
"""Messages held at most. An asset status change dropped would leave MaintainX showing the
wrong status until the next change, so meter values (the next one carries the total) go
first beyond this."""


def trim_held(
    messages: list[dict[str, Any]], limit: int = HELD_LIMIT
) -> tuple[list[dict[str, Any]], int]:
    """``messages`` (oldest first) within ``limit``, and how many were given up: the oldest
    meter values first, then the oldest messages of any kind."""
    excess = len(messages) - limit
    if excess <= 0:
        return list(messages), 0
    readings = [i for i, m in enumerate(messages) if "meter" in m][:excess]
    gone = set(readings)
    others = (i for i in range(len(messages)) if i not in gone)
    while len(gone) < excess:
        gone.add(next(others))
    return [m for i, m in enumerate(messages) if i not in gone], excess
