"""How a session ends: the internal ``SessionLost``, the transport errors that mean the
session is gone, asyncua's errors as short text, and stopping a session's helper tasks."""

from __future__ import annotations

import asyncio
from typing import Any

from asyncua.ua.uaerrors import UaStatusCodeError

from edge_agent.sources.opcua.errors import OpcUaError
from edge_agent.sources.opcua.refusals import status_name as fault_status

# Transport-level failures: the session is gone, reconnect.
TRANSPORT_ERRORS = (ConnectionError, OSError, EOFError)


class SessionLost(OpcUaError):
    """Internal: the session must be torn down and rebuilt (the message says why)."""


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
    """Raise the cancellation an ``asyncio.wait_for`` swallowed. On Python 3.11, when the
    awaited call fails just as the task is cancelled, ``wait_for`` (asyncua uses it inside
    ``connect()``) raises the call's error instead of ``CancelledError``: ``run`` took it for
    a failed attempt and went on, and whoever cancelled it waited for ever (22 of 200
    cancellations of a fast-failing unsecured client were lost; 0 with this check)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def status_name(exc: UaStatusCodeError) -> str:
    """The fault's status code name, else its text: for log lines and reasons."""
    return fault_status(exc) or str(exc) or type(exc).__name__


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
