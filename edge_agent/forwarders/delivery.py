"""What every forwarder's delivery loop does alike: the wake-up, the lease, the outbox
writes that settle an item (ack, nack, dead letter), the counts of a delivery, and the hold
on a destination that refuses everything.

Both forwarders run the same cycle: *arm* the wake-up, lease what the destination has room
for, send, settle each item in the outbox (ack on confirmed delivery, nack to keep its
place, dead letter when it can never be delivered), back off after a failure, idle until
woken when there is nothing to send. They differ in how sending completes, so each keeps
its own loop around these pieces:

- MaintainX (:mod:`edge_agent.forwarders.maintainx.forwarder`) sends one item at a time and
  knows each outcome when the request returns, in order;
- MQTT (:mod:`edge_agent.forwarders.mqtt`) keeps a window of publishes in flight, learns
  their outcomes from PUBACK callbacks (and, with ``confirm: hub``, from the hub's results
  much later) and writes them in one worker-thread call per cycle.

One loop driving both through a single ``send`` would have to turn the MQTT window into
a MaintainX-like request/answer (losing the window) or MaintainX into callbacks (losing its
order); the shared parts live here instead. Each piece logs through the forwarder's own
logger (``log``), with the forwarder's own words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from edge_agent.common.backoff import Backoff
from edge_agent.interfaces import ForwarderStatus, OutboxItem
from edge_agent.outbox.calls import lease_items
from edge_agent.outbox.store import Outbox, OutboxError


class Wake:
    """New items are in the outbox (or a send completed): end the idle wait now.

    :meth:`arm` before looking at the outbox, so that a :meth:`set` from then on ends the
    next :meth:`idle` at once instead of being lost. Use on the event loop.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def arm(self) -> None:
        self._event.clear()

    async def idle(self, timeout_s: float, also: asyncio.Event | None = None) -> None:
        """Wait up to ``timeout_s`` for :meth:`set` (or for ``also``, e.g. a reload)."""
        if also is None:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
            # arrives as the awaited event fires, and the forwarder would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._event.wait()
            return
        waiters = [asyncio.ensure_future(self._event.wait()), asyncio.ensure_future(also.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


async def lease_or_report(
    outbox: Outbox, count: int, status: ForwarderStatus, log: logging.Logger, message: str
) -> list[OutboxItem] | None:
    """Up to ``count`` items, oldest first; None when the outbox failed (logged as
    ``message`` and shown in ``status.last_error``; the caller pauses its own way)."""
    try:
        return await lease_items(outbox, count)
    except OutboxError as exc:
        log.error(message, extra={"error": str(exc)})
        status.last_error = str(exc)
        return None


def nack_or_log(
    outbox: Outbox, ids: Sequence[int], reason: str, log: logging.Logger, message: str
) -> None:
    """Put leased items back in their place (blocking: call in a worker thread, or where
    blocking is intended). A failure is logged as ``message``: the leases run out and the
    items come back in order anyway."""
    try:
        outbox.nack(list(ids), reason)
    except OutboxError as exc:
        log.error(message, extra={"error": str(exc)})


def nack_by_reason(
    outbox: Outbox, nacks: Iterable[tuple[int, str]], log: logging.Logger, message: str
) -> None:
    """:func:`nack_or_log` for items with their own reasons: one call per reason."""
    by_reason: dict[str, list[int]] = {}
    for item_id, reason in nacks:
        by_reason.setdefault(reason, []).append(item_id)
    for reason, ids in by_reason.items():
        nack_or_log(outbox, ids, reason, log, message)


def release_on_stop(outbox: Outbox, items: Sequence[OutboxItem]) -> None:
    """Give leased items back as the forwarder stops. Synchronous on purpose: this runs
    while the task is being cancelled; a failure is the lease running out instead."""
    if items:
        with contextlib.suppress(Exception):
            outbox.nack([i.id for i in items], "forwarder stopped")


def count_delivered(status: ForwarderStatus, count: int, backoff: Backoff) -> None:
    """``count`` items confirmed by the destination: counted, and the backoff starts over."""
    status.sent += count
    status.last_delivery_ns = time.time_ns()
    backoff.reset()


class DestinationHold:
    """The hold on a destination that refuses everything alike (a configuration error):
    every item stays in the outbox and ``status.holding`` says why. Logged once when the
    hold starts and once when it ends, not once per item."""

    def __init__(self, status: ForwarderStatus, log: logging.Logger) -> None:
        self.status = status
        self._log = log

    @property
    def holding(self) -> bool:
        return self.status.holding is not None

    def hold(self, reason: str, message: str, extra: dict[str, Any]) -> None:
        """Hold everything because of ``reason`` (logged as ``message`` at the start)."""
        if self.status.holding is None:
            self._log.error(message, extra=extra)
        self.status.holding = reason

    def release(self, message: str | None) -> None:
        """The destination accepts again (``message`` logged if a hold ends; None: quietly)."""
        if self.status.holding is not None and message is not None:
            self._log.info(message)
        self.status.holding = None
