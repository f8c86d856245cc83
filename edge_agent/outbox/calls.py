"""Outbox calls from asyncio code: in a worker thread, and never abandoned half-way.

``asyncio.to_thread`` lets a cancelled task move on while its thread still writes the
outbox. A forwarder stopped during an ack or a nack would then return while the outbox is
still changing, and a lease finished after the cancel would hold items nobody knows about
until the lease runs out. :func:`outbox_call` waits for the thread before the cancel goes
on, and :func:`lease_items` hands back a lease that finished after its caller was
cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from edge_agent.interfaces import OutboxItem
from edge_agent.outbox.store import Outbox

T = TypeVar("T")


async def outbox_call(
    call: Callable[..., T], *args: object, undo: Callable[[T], None] | None = None
) -> T:
    """``call(*args)`` in a worker thread. If the caller is cancelled meanwhile, the call
    still ends before the cancellation propagates, and ``undo`` gets its result."""
    done = asyncio.ensure_future(asyncio.to_thread(call, *args))
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        # The thread cannot be interrupted; an outbox call takes milliseconds.
        await asyncio.wait([done])
        if not done.cancelled() and done.exception() is None and undo is not None:
            undo(done.result())
        raise


async def lease_items(outbox: Outbox, count: int) -> list[OutboxItem]:
    """``outbox.lease(count)`` from asyncio: a lease the caller never saw is released."""
    return await outbox_call(
        outbox.lease, count, undo=lambda items: outbox.release(i.id for i in items)
    )
