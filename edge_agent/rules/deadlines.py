"""The engine's deadlines: one heap of ``(time, order, key, generation)``.

Entries are never removed: a changed deadline bumps its owner's generation and the stale
entry is skipped when it surfaces. A staleness watcher has at most one entry (generation 0);
when it surfaces early (the sensor reported since), the engine pushes it again at the real
due time, so a good reading costs no heap operation.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Final, cast

from edge_agent.rules.compiled import CompiledRule, StaleWatcher
from edge_agent.rules.series import Flatline

# Order of deadlines that fall on the same instant: the lifecycle's expiries first (a shelve
# for 2h is over at exactly 2h: an activation then notifies), then state deadlines
# (activation, clearing), then flatline trips, then staleness. Within one order, config
# position decides.
ORDER_LIFE: Final = -1
ORDER_STATE: Final = 0
ORDER_FLAT: Final = 1
ORDER_STALE: Final = 2


class Deadlines:
    """The heap and the calls that keep each owner's deadline and generation in step."""

    __slots__ = ("heap",)

    def __init__(self) -> None:
        # Always this one list (the engine's hot path keeps a reference to it).
        self.heap: list[tuple[int, int, int, int]] = []

    def set(self, rule: CompiledRule, when: int) -> None:
        """``rule``'s state deadline (end of its on- or off-delay) is ``when``."""
        rule.gen += 1
        rule.deadline = when
        heapq.heappush(self.heap, (when, ORDER_STATE, rule.key, rule.gen))

    def cancel(self, rule: CompiledRule) -> None:
        if rule.deadline is not None:
            rule.deadline = None
            rule.gen += 1

    def set_flat(self, rule: CompiledRule, flatline: Flatline, when: int) -> None:
        """``rule``'s flatline trips at ``when`` unless a sample moves it."""
        flatline.flat_gen += 1
        flatline.flat_due = when
        heapq.heappush(self.heap, (when, ORDER_FLAT, rule.key, flatline.flat_gen))

    def set_life(self, when: int, gen: int) -> None:
        """The lifecycle's earliest expiry is ``when`` (one entry; ``gen`` tells it current)."""
        heapq.heappush(self.heap, (when, ORDER_LIFE, 0, gen))

    def watch(self, watcher: StaleWatcher, due: int) -> None:
        """Queue ``watcher`` at ``due`` (the caller checks it is not queued already)."""
        watcher.queued = True
        heapq.heappush(self.heap, (due, ORDER_STALE, watcher.key, 0))

    def rebuild(self, rules: Iterable[CompiledRule], watchers: Iterable[StaleWatcher]) -> None:
        """The heap anew from the owners' deadlines (after a restore or a reconfigure)."""
        heap: list[tuple[int, int, int, int]] = []
        for rule in rules:
            if rule.deadline is not None:
                rule.gen += 1
                heap.append((rule.deadline, ORDER_STATE, rule.key, rule.gen))
            flat_due = rule.condition.flat_due
            if flat_due is not None:
                flatline = cast(Flatline, rule.condition)
                flatline.flat_gen += 1
                heap.append((flat_due, ORDER_FLAT, rule.key, flatline.flat_gen))
        for watcher in watchers:
            sensor = watcher.sensor
            watcher.queued = False
            if sensor.last_good is not None and not watcher.fired:
                watcher.queued = True
                heap.append((sensor.last_good + watcher.duration, ORDER_STALE, watcher.key, 0))
        heapq.heapify(heap)
        self.heap[:] = heap
