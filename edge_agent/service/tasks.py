"""Stopping tasks and waiting with a deadline, without ever swallowing a cancellation.

On Python 3.11, ``asyncio.wait_for`` returns the awaited result when that result and a
cancellation of the waiting task arrive in the same loop iteration: the cancellation is
lost and a stop never happens. ``contextlib.suppress(asyncio.CancelledError)`` around
``await task`` loses it too (the cancellation of the *awaiting* task is suppressed with the
one of the awaited task). These helpers use ``asyncio.timeout`` and ``asyncio.wait``
instead, which leave the caller's own cancellation alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[Any], timeout_s: float) -> bool:
    """Cancel ``task`` and wait up to ``timeout_s`` for it to end; True if it ended.

    The task's own result, error or cancellation is consumed here (an error is logged);
    a cancellation of the caller propagates as usual.
    """
    task.cancel()
    return await wait_done(task, timeout_s)


async def wait_done(task: asyncio.Task[Any], timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``task`` to end, without cancelling it; True if it
    ended. Its error, if any, is logged, not raised."""
    # ``asyncio.wait`` never raises the task's outcome, so nothing has to be suppressed.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await asyncio.wait({task})
    if not task.done():
        log.warning("Task did not stop in time.", extra={"task": task.get_name()})
        return False
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error(
            "Task ended with an error.",
            extra={"task": task.get_name(), "error": repr(error)},
            exc_info=error,
        )
    return True


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``event``; True if it is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()
    return event.is_set()
