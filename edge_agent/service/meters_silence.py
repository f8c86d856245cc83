"""Meters that have refused every reading for a while (issue 14): a stale or bad-quality
sensor leaves a meter silent, and an operator should hear of it (``/readyz`` under
``degraded``, the ``edge_agent_meter_silent`` gauge) rather than find a gap in MaintainX.

A meter (or ``downtime:ASSET``) is silent once its readings have all been refused for
longer than its ``max_gap`` when one is written, else :data:`SILENT_AFTER_NS`; a reading it
uses ends it. Times on the monotonic clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Final

SILENT_AFTER_NS: Final = 5 * 60 * 1_000_000_000
"""How long a meter without ``max_gap`` may refuse every reading before it is said:
a few polls of a flaky link stay quiet; five minutes of nothing is a sensor to look at."""


class Silence:
    """Since when each meter has refused every reading (only those refusing now)."""

    def __init__(self, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.clock_ns = clock_ns
        self._since: dict[str, int] = {}

    def note(self, key: str, refused: bool) -> None:
        """A reading of meter ``key``: refused or used."""
        if refused:
            self._since.setdefault(key, self.clock_ns())
        else:
            self._since.pop(key, None)

    def keep(self, keys: Iterable[str]) -> None:
        """Forget meters no longer configured (a reload)."""
        kept = set(keys)
        self._since = {key: at for key, at in self._since.items() if key in kept}

    def silent(self, limits: Mapping[str, int | None]) -> dict[str, float]:
        """meter → seconds it has refused every reading, for those past their limit."""
        now = self.clock_ns()
        found: dict[str, float] = {}
        for key, since in sorted(self._since.items()):
            limit = limits.get(key)
            if now - since > (limit if limit is not None else SILENT_AFTER_NS):
                found[key] = round((now - since) / 1e9, 1)
        return found
