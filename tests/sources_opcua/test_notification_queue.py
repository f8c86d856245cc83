"""The subscription's notification queue: one list per publish response, bounded in items,
the oldest dropped first, every drop counted."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from asyncua import ua

from edge_agent.sources.opcua.source import _Notifications


def response(*handles: int) -> list[ua.MonitoredItemNotification]:
    """One publish response's items, as asyncua decodes them."""
    return [ua.MonitoredItemNotification(ClientHandle=h) for h in handles]


def handles_of(lists: list[list[ua.MonitoredItemNotification]]) -> list[list[int]]:
    return [[item.ClientHandle for item in items] for items in lists]


def test_a_full_queue_drops_the_oldest_items_and_counts_them() -> None:
    source: Any = SimpleNamespace(notifications_dropped=0)

    async def fill() -> list[list[int]]:
        queue = _Notifications(source, maxsize=5)
        queue.put(response(1, 2, 3))
        queue.put(response(4, 5))
        queue.put(response(6, 7, 8, 9))  # 9 items for 5 places: 1..4 go, 5 stays
        assert len(queue) == 5
        return handles_of(await queue.take(100))

    assert asyncio.run(fill()) == [[5], [6, 7, 8, 9]]
    assert asyncio.run(fill()) == [[5], [6, 7, 8, 9]]
    assert source.notifications_dropped == 8  # 4 a run


def test_a_response_larger_than_the_bound_keeps_its_newest_items() -> None:
    source: Any = SimpleNamespace(notifications_dropped=0)

    async def fill() -> list[list[int]]:
        queue = _Notifications(source, maxsize=3)
        queue.put(response(1))
        queue.put(response(2, 3, 4, 5, 6))
        return handles_of(await queue.take(100))

    assert asyncio.run(fill()) == [[4, 5, 6]]
    assert source.notifications_dropped == 3


def test_take_gives_whole_responses_up_to_the_limit_and_waits_for_one() -> None:
    source: Any = SimpleNamespace(notifications_dropped=0)

    async def drain() -> list[list[list[int]]]:
        queue = _Notifications(source, maxsize=100)
        waiting = asyncio.ensure_future(queue.take(4))
        await asyncio.sleep(0)
        assert not waiting.done()  # nothing queued: it waits
        queue.put([])  # an empty response is nothing
        await asyncio.sleep(0)
        assert not waiting.done()
        queue.put(response(1, 2, 3, 4, 5))
        first = await waiting  # more than the limit alone: still given, whole
        queue.put(response(6, 7))
        queue.put(response(8, 9))
        queue.put(response(10))
        second = await queue.take(4)
        third = await queue.take(4)
        assert len(queue) == 0
        return [handles_of(first), handles_of(second), handles_of(third)]

    assert asyncio.run(drain()) == [[[1, 2, 3, 4, 5]], [[6, 7], [8, 9]], [[10]]]
    assert source.notifications_dropped == 0
