"""The subscription's event queue: bounded, the oldest dropped first, every drop counted."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from edge_agent.sources.opcua.source import _Notifications


def test_a_full_queue_drops_the_oldest_and_counts_it() -> None:
    source: Any = SimpleNamespace(notifications_dropped=0)

    async def fill() -> list[int]:
        queue = _Notifications(source, maxsize=3)
        for n in range(5):
            queue.put_nowait(n)  # never raises QueueFull: asyncua's delivery relies on it
        return [queue.get_nowait() for _ in range(queue.qsize())]

    assert asyncio.run(fill()) == [2, 3, 4]
    assert source.notifications_dropped == 2
