"""The delivery loop both forwarders run, and the pieces around it: the wake-up, the lease,
the outbox writes that settle an item (ack, nack, dead letter), the counts of a delivery, and
the hold on a destination that refuses everything.

:class:`DeliveryLoop` owns the cycle: *arm* the wake-up, write the outcomes reported since
the last cycle (one worker-thread call), lease what the sink has room for, hand items to the
sink, and say whether to go on, pause or idle. A :class:`Sink` only says how many items it
can take now (:meth:`Sink.free`), starts delivering one (:meth:`Sink.submit`) and reports
each outcome (:class:`Delivered`, :class:`Retry`, :class:`DeadLetter`) through
:meth:`DeliveryLoop.report`, at once or later from a callback; a report ends the idle wait.

- MaintainX (:mod:`edge_agent.forwarders.maintainx.forwarder`) takes one item at a time
  (``submit`` awaits the request and reports before it returns) and runs the loop
  ``ordered``: a retry puts back everything leased after the item, keeping the order;
- MQTT (:mod:`edge_agent.forwarders.mqtt`) takes its free window; its PUBACK callbacks (and,
  with ``confirm: hub``, the hub's results, written as the sink's own writes) report later.

The connection (link, client, ledger, reload) stays each forwarder's own: it calls
:meth:`DeliveryLoop.cycle` while it can deliver. Each piece logs through the forwarder's own
logger (``log``), with the forwarder's own words (:class:`Words`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge_agent.common.backoff import Backoff
from edge_agent.interfaces import ForwarderStatus, OutboxItem
from edge_agent.outbox.calls import lease_items, outbox_call
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


# -- the loop ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivered:
    """The destination confirmed the item: ack it. ``then`` runs once the ack is on disk."""

    item_id: int
    then: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    """Not delivered: nack the item (it keeps its place). ``delay``: pause before leasing
    again; ``backoff``: pause by the loop's backoff (once, however many asked)."""

    item_id: int
    reason: str
    delay: float | None = None
    backoff: bool = False


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """The item can never be delivered: to the dead letters with ``reason``. ``then`` runs
    once that is on disk."""

    item_id: int
    reason: str
    then: Callable[[], None] | None = None


Outcome = Delivered | Retry | DeadLetter


@dataclass(frozen=True, slots=True)
class Words:
    """The forwarder's own log lines for the loop's outbox failures."""

    lease_failed: str
    ack_failed: str
    nack_failed: str
    dead_letter_failed: str = "Cannot dead-letter an outbox item."


class Sink(Protocol):
    """Where a :class:`DeliveryLoop` delivers to (see the module doc)."""

    def free(self) -> int:
        """How many more items it can take now."""
        ...

    async def submit(self, item: OutboxItem) -> bool:
        """Start delivering ``item``; its outcome goes to :meth:`DeliveryLoop.report`.
        False: nothing was started (e.g. the item is still in flight from an earlier lease)."""
        ...

    async def pump(self) -> int:
        """Before leasing: work that is not a new item (resends); how many were started."""
        ...

    def take_writes(self) -> Callable[[], int] | None:
        """Outbox writes of its own, run in the loop's worker-thread call; the callable
        returns how many items it confirmed delivered."""
        ...

    def ack_failed(self, exc: OutboxError) -> float:
        """An ``ordered`` loop could not ack: the pause before leasing again."""
        ...


@dataclass(slots=True)
class _Batch:
    """What one settle writes (see :meth:`DeliveryLoop._take_batch`)."""

    extra: Callable[[], int] | None
    acks: list[Delivered] = field(default_factory=list)
    nacks: list[tuple[int, str]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    rest: list[int] = field(default_factory=list)
    delay: float | None = None
    back_off: bool = False
    writes: bool = False

    @property
    def pause(self) -> float | None:
        """Known before writing: a retry's delay, or the backoff (its length is not)."""
        return 0.0 if self.back_off and self.delay is None else self.delay


@dataclass(slots=True)
class _Written:
    acked: int = 0
    ack_error: OutboxError | None = None
    thens: list[Callable[[], None]] = field(default_factory=list)


class DeliveryLoop:
    """Lease → sink → outcome → ack/nack/dead letter → backoff/wake (see the module doc).

    ``prefetch``: lease at least this many at once (handed to the sink as it has room);
    ``ordered``: a retry (or a failed ack) puts back everything leased after the item;
    ``lease_with_writes``: the sink's :meth:`Sink.pump` does not wait on a delivery and
    needs none of the outcomes written (MQTT: resends, held items): it runs first, then
    one worker-thread call writes the outcomes and leases (two calls otherwise: write,
    pump, lease — a pump that delivers, as MaintainX's plant sink does, keeps its acks
    on disk before the next request).
    """

    def __init__(
        self,
        sink: Sink,
        outbox: Outbox,
        status: ForwarderStatus,
        log: logging.Logger,
        words: Words,
        *,
        backoff: Backoff,
        lease_retry_s: Callable[[], float],
        prefetch: int = 0,
        ordered: bool = False,
        lease_with_writes: bool = False,
    ) -> None:
        if ordered and lease_with_writes:
            raise ValueError("an ordered loop writes before it leases: a failed ack puts back")
        self.sink = sink
        self.outbox = outbox
        self.status = status
        self.backoff = backoff
        self.wake = Wake()
        self._log = log
        self._words = words
        self._lease_retry_s = lease_retry_s
        self._prefetch = prefetch
        self._ordered = ordered
        self._lease_with_writes = lease_with_writes
        self._queue: deque[OutboxItem] = deque()
        self._submitting: OutboxItem | None = None
        self._outcomes: list[Outcome] = []
        self._back_off = False

    def report(self, outcome: Outcome) -> None:
        """An item's outcome (on the event loop); written at the next cycle."""
        self._outcomes.append(outcome)
        self.wake.set()

    def back_off(self) -> None:
        """Pause by the backoff at the next cycle (a refusal without an item to nack)."""
        self._back_off = True
        self.wake.set()

    async def cycle(self) -> float | None:
        """One turn: 0.0 to go on at once, seconds to pause, None when there was nothing
        to do (idle until :attr:`wake`)."""
        # Armed before looking: a wake() or report from now on ends the idle wait at once.
        self.wake.arm()
        if not self._lease_with_writes:
            pause = await self.settle()
            if pause is not None:
                return pause
            started = await self.sink.pump()
            if not await self._lease(self._lease_count()):
                return self._lease_retry_s()
        else:
            batch = self._take_batch()
            if batch.pause is not None:
                return await self._settle_batch(batch, pausing=True)
            try:
                started = await self.sink.pump()
            except BaseException:
                # A cancel (stop, reload) or an error while the pump waits: what this cycle
                # took is written now, or it would be lost with it (acks; nacks, whose items
                # nobody would hold; the sink's own writes).
                await self._settle_batch(batch, pausing=False)
                raise
            # The outcomes' writes and the lease of what is free now in one worker-thread
            # call (the pump needed none of the writes).
            if not await self._settle_and_lease(batch, self._lease_count()):
                return self._lease_retry_s()
        while self._queue and self.sink.free() > 0:
            item = self._queue.popleft()
            self._submitting = item
            started += await self.sink.submit(item)
            self._submitting = None
            if self._ordered and self._outcomes:
                # Settled before the next item: an ordered sink's next item waits for it.
                # (A window's outcomes wait for the next cycle, to be written together.)
                pause = await self.settle()
                if pause is not None:
                    return pause
        if started == 0 and not self._outcomes:
            return None
        return 0.0

    def _lease_count(self) -> int:
        """How many to lease now: none while leased items wait for the sink."""
        if self._queue:
            return 0
        free = self.sink.free()
        return max(free, self._prefetch) if free > 0 else 0

    async def _lease(self, count: int) -> bool:
        """Lease ``count`` items into the queue; False when the outbox failed (logged)."""
        if count <= 0:
            return True
        items = await lease_or_report(
            self.outbox, count, self.status, self._log, self._words.lease_failed
        )
        if items is None:
            return False
        self._queue.extend(items)
        return True

    async def _settle_and_lease(self, batch: _Batch, count: int) -> bool:
        """Write ``batch`` and lease ``count`` items in one worker-thread call (a cancel
        lets it finish: the writes count, the lease is given back). False when the lease
        failed (logged, shown in the status)."""
        if not batch.writes:
            return await self._lease(count)
        if count <= 0:
            await self._settle_batch(batch, pausing=True)  # no pause: none was asked
            return True

        def undo(done: tuple[_Written, list[OutboxItem] | OutboxError]) -> None:
            self._after_write(done[0])
            if isinstance(done[1], list):
                self.outbox.release(i.id for i in done[1])

        written, leased = await outbox_call(self._write_then_lease, batch, count, undo=undo)
        self._after_write(written)
        if isinstance(leased, OutboxError):
            self._log.error(self._words.lease_failed, extra={"error": str(leased)})
            self.status.last_error = str(leased)
            return False
        self._queue.extend(leased)
        return True

    def _write_then_lease(
        self, batch: _Batch, count: int
    ) -> tuple[_Written, list[OutboxItem] | OutboxError]:
        """:meth:`_write`, then the lease (after the nacks: a nacked item may come back at
        once, in its place, as it did with two calls). Runs in a worker thread."""
        written = self._write(batch.acks, batch.nacks, batch.dead, batch.extra, batch.rest)
        try:
            return written, self.outbox.lease(count)
        except OutboxError as exc:
            return written, exc

    def strand(self, reason: str) -> None:
        """Leased items not handed to the sink yet go back at the next settle."""
        while self._queue:
            self.report(Retry(self._queue.popleft().id, reason))

    async def settle(self, *, pausing: bool = True) -> float | None:
        """Write the outcomes reported so far and the sink's own writes (one worker-thread
        call, which a cancel lets finish). Returns the pause they ask for, if any; with
        ``pausing`` False (a link going down) a backoff they ask for waits for the next."""
        return await self._settle_batch(self._take_batch(), pausing=pausing)

    def _take_batch(self) -> _Batch:
        """The outcomes reported so far and the sink's own writes, sorted for writing, and
        the pause they ask for (known before writing, but for an ordered sink's failed ack)."""
        batch = _Batch(extra=self.sink.take_writes())
        outcomes, self._outcomes = self._outcomes, []
        batch.back_off, self._back_off = self._back_off, False
        for outcome in outcomes:
            if isinstance(outcome, Delivered):
                batch.acks.append(outcome)
            elif isinstance(outcome, DeadLetter):
                batch.dead.append(outcome)
            else:
                batch.nacks.append((outcome.item_id, outcome.reason))
                if self._ordered:
                    batch.nacks.extend((i.id, outcome.reason) for i in self._queue)
                    self._queue.clear()
                if outcome.delay is not None:
                    batch.delay = max(batch.delay or 0.0, outcome.delay)
                batch.back_off = batch.back_off or outcome.backoff
        batch.writes = bool(outcomes) or batch.extra is not None
        if self._ordered and batch.acks:
            batch.rest = [i.id for i in self._queue]
        return batch

    async def _settle_batch(self, batch: _Batch, *, pausing: bool) -> float | None:
        pause = batch.delay
        if batch.writes:
            written = await outbox_call(
                self._write,
                batch.acks,
                batch.nacks,
                batch.dead,
                batch.extra,
                batch.rest,
                undo=self._after_write,
            )
            self._after_write(written)
            if written.ack_error is not None and self._ordered:
                pause = max(pause or 0.0, self.sink.ack_failed(written.ack_error))
        if batch.back_off and not pausing:
            self._back_off = True
        elif batch.back_off:
            pause = max(pause or 0.0, self.backoff.next_delay())
        return pause

    def _write(
        self,
        acks: list[Delivered],
        nacks: list[tuple[int, str]],
        dead: list[DeadLetter],
        extra: Callable[[], int] | None,
        rest: list[int],
    ) -> _Written:
        """Ack (one transaction), nack by reason, dead-letter, then the sink's own writes.
        Runs in a worker thread."""
        written = _Written()
        if acks:
            try:
                self.outbox.ack([a.item_id for a in acks])
            except OutboxError as exc:
                # Not acked on disk: they will be sent again (same event ids): a duplicate,
                # never a loss.
                self._log.error(
                    self._words.ack_failed, extra={"error": str(exc), "count": len(acks)}
                )
                written.ack_error = exc
                if self._ordered:
                    nacks = nacks + [(i, str(exc)) for i in [a.item_id for a in acks] + rest]
            else:
                written.acked = len(acks)
                written.thens.extend(a.then for a in acks if a.then is not None)
        # A failed nack: the leases expire on their own and the items are redelivered then.
        nack_by_reason(self.outbox, nacks, self._log, self._words.nack_failed)
        for letter in dead:
            try:
                self.outbox.dead_letter(letter.item_id, letter.reason)
            except OutboxError as exc:  # the lease runs out and the item comes back
                self._log.error(self._words.dead_letter_failed, extra={"error": str(exc)})
                continue
            self.status.dead_lettered += 1
            if letter.then is not None:
                written.thens.append(letter.then)
        if extra is not None:
            written.acked += extra()
        return written

    def _after_write(self, written: _Written) -> None:
        if written.ack_error is not None and self._ordered:
            self._queue.clear()  # nacked with the item
        if written.acked:
            count_delivered(self.status, written.acked, self.backoff)
        thens, written.thens = written.thens, []
        for then in thens:
            then()
        written.acked = 0

    def leased(self) -> list[int]:
        """What is leased and not settled: the item being submitted, the items waiting for
        the sink, the outcomes not written yet."""
        ids = [o.item_id for o in self._outcomes]
        if self._submitting is not None:
            ids.append(self._submitting.id)
        ids.extend(i.id for i in self._queue)
        return ids

    def release_on_stop(self) -> None:
        """Give back everything :meth:`leased` as the forwarder stops (synchronously)."""
        ids = self.leased()
        self._outcomes.clear()
        self._queue.clear()
        self._submitting = None
        if ids:
            with contextlib.suppress(Exception):
                self.outbox.nack(ids, "forwarder stopped")
