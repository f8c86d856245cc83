"""Outbox calls from asyncio: a cancelled caller never leaves the outbox changing behind it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from edge_agent.outbox import Outbox
from edge_agent.outbox.calls import lease_items, outbox_call


def gated(call: Callable[..., Any]) -> tuple[Callable[..., Any], threading.Event, threading.Event]:
    """``call`` that waits in its thread until the gate opens; ``entered`` says it is there."""
    entered, gate = threading.Event(), threading.Event()

    def wrapper(*args: Any) -> Any:
        entered.set()
        gate.wait(10)
        return call(*args)

    return wrapper, entered, gate


async def cancel_inside(
    task: asyncio.Task[Any], entered: threading.Event, gate: threading.Event
) -> None:
    """Cancel ``task`` while its thread is inside the call, then open the gate."""
    assert await asyncio.to_thread(entered.wait, 10)
    task.cancel()
    for _ in range(20):
        await asyncio.sleep(0)
    # The thread is still inside the call: the task must not have moved on.
    assert not task.done()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancelled_ack_has_ended_when_the_caller_stops(outbox: Outbox) -> None:
    ids = outbox.put_many([{"n": n} for n in range(3)])
    outbox.lease(3)
    ack, entered, gate = gated(outbox.ack)
    await cancel_inside(asyncio.create_task(outbox_call(ack, ids)), entered, gate)
    assert outbox.stats().depth == 0


async def test_a_lease_finished_after_the_cancel_is_released(
    outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = outbox.put_many([{"n": n} for n in range(3)])
    lease, entered, gate = gated(outbox.lease)
    monkeypatch.setattr(outbox, "lease", lease)
    await cancel_inside(asyncio.create_task(lease_items(outbox, 3)), entered, gate)
    monkeypatch.undo()
    # Nobody holds them, and releasing counted no attempt.
    items = outbox.lease(10)
    assert [i.id for i in items] == ids
    assert [i.attempts for i in items] == [0, 0, 0]


async def test_an_uncancelled_call_returns_its_result(outbox: Outbox) -> None:
    ids = outbox.put_many([{"n": n} for n in range(2)])
    items = await lease_items(outbox, 5)
    assert [i.id for i in items] == ids
    assert await lease_items(outbox, 5) == []


def test_release_gives_the_lease_back_without_an_attempt(outbox: Outbox) -> None:
    ids = outbox.put_many([{"n": n} for n in range(2)])
    outbox.lease(2)
    outbox.release([ids[1]])
    again = outbox.lease(5)
    assert [(i.id, i.attempts) for i in again] == [(ids[1], 0)]
