"""The hub's per-alert locks (hub/alert_locks.py): one alert's events one at a time, in the
order they came; other alerts alongside; nothing left behind, a cancelled waiter included."""

from __future__ import annotations

import asyncio

import pytest

from edge_agent.hub.alert_locks import AlertLocks


async def test_one_alerts_events_wait_for_each_other_and_others_do_not() -> None:
    locks = AlertLocks()
    order: list[str] = []
    release_first = asyncio.Event()

    async def event(alert_id: str, name: str, gate: asyncio.Event | None = None) -> None:
        async with locks.hold(alert_id):
            order.append(f"{name} in")
            if gate is not None:
                await gate.wait()
            order.append(f"{name} out")

    first = asyncio.create_task(event("a", "a1", release_first))
    second = asyncio.create_task(event("a", "a2"))
    other = asyncio.create_task(event("b", "b1"))
    await asyncio.wait_for(other, 5)  # another alert is not held up by a's
    await asyncio.sleep(0)
    assert order == ["a1 in", "b1 in", "b1 out"]  # a2 waits for a1
    assert len(locks) == 1
    release_first.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert order[3:] == ["a1 out", "a2 in", "a2 out"]
    assert len(locks) == 0  # a lock lives only while it is held or awaited


async def test_a_cancelled_waiter_leaves_no_lock_behind_and_blocks_nobody() -> None:
    locks = AlertLocks()
    gate = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("a"):
            await gate.wait()

    async def waiter() -> None:
        async with locks.hold("a"):
            raise AssertionError("a cancelled waiter never gets the lock")

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    gate.set()
    await asyncio.wait_for(held, 5)
    assert len(locks) == 0
    async with asyncio.timeout(5):
        async with locks.hold("a"):  # free again
            pass
    assert len(locks) == 0


async def test_a_failure_inside_releases_the_lock() -> None:
    locks = AlertLocks()
    with pytest.raises(RuntimeError):
        async with locks.hold("a"):
            raise RuntimeError("handling failed")
    assert len(locks) == 0
    async with asyncio.timeout(5):
        async with locks.hold("a"):
            pass


async def test_100k_distinct_alerts_and_cancelled_waiters_leave_nothing_behind() -> None:
    """Review (issue 16): memory stays bounded by the alerts held now, not by every alert
    seen; waiters cancelled at any point (queued, or just handed the lock) leak nothing."""
    locks = AlertLocks()
    for n in range(100_000):
        async with locks.hold(f"alert-{n}"):
            pass
    assert len(locks) == 0

    gate = asyncio.Event()

    async def holder(alert_id: str) -> None:
        async with locks.hold(alert_id):
            await gate.wait()

    async def waiter(alert_id: str) -> None:
        async with locks.hold(alert_id):
            await asyncio.sleep(0)

    held = [asyncio.create_task(holder(f"a{n}")) for n in range(100)]
    waiting = [asyncio.create_task(waiter(f"a{n % 100}")) for n in range(1000)]
    await asyncio.sleep(0)
    for task in waiting[::2]:
        task.cancel()  # queued behind the holder
    gate.set()
    await asyncio.sleep(0)  # holders release: the first waiters are handed the lock...
    for task in waiting[1::4]:
        task.cancel()  # ...and some are cancelled before they run
    await asyncio.wait_for(asyncio.gather(*held, *waiting, return_exceptions=True), 10)
    assert len(locks) == 0
    async with asyncio.timeout(5):
        async with locks.hold("a0"):
            pass
