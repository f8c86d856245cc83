"""A window's delivery cycle writes its outcomes and leases what is free in ONE worker-thread
call (issue 16: the lease and the writes were two hand-offs to a thread per cycle), with
the same effects in the same order as the two calls had: the writes first (a nacked item
comes back in its place at once), a cancel lets the call finish, writes kept and the lease
given back, a failed lease asks for the lease pause after the writes landed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.common.backoff import Backoff
from edge_agent.forwarders.delivery import Delivered, DeliveryLoop, Retry, Sink
from edge_agent.interfaces import ForwarderStatus
from edge_agent.outbox import Outbox
from edge_agent.outbox.store import OutboxError

from .test_delivery_loop import WORDS, OneAtATime, Window, log, remaining
from .test_delivery_loop import make_loop as make_two_call_loop


def make_loop(sink: Sink, outbox: Outbox, status: ForwarderStatus, **options: Any) -> DeliveryLoop:
    """The loop as the MQTT forwarder builds it (``lease_with_writes``), unless told."""
    if options.get("ordered"):
        return make_two_call_loop(sink, outbox, status, **options)
    return DeliveryLoop(
        sink,
        outbox,
        status,
        log,
        WORDS,
        backoff=Backoff(initial_s=1.0, max_s=60.0),
        lease_retry_s=lambda: 3.0,
        lease_with_writes=True,
        **options,
    )


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The name of every call handed to a worker thread (``outbox_call`` uses
    ``asyncio.to_thread``)."""
    names: list[str] = []
    to_thread = asyncio.to_thread

    def counting(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        names.append(getattr(func, "__name__", repr(func)))
        return to_thread(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counting)
    yield names


async def test_outcomes_and_the_next_lease_take_one_worker_call(
    tmp_path: Path, calls: list[str]
) -> None:
    status = ForwarderStatus()
    sink = Window(2)
    with Outbox.open(tmp_path / "outbox", 10_000_000) as outbox:
        for n in range(5):
            outbox.put({"n": n})
        loop = make_loop(sink, outbox, status)
        assert await loop.cycle() == 0.0
        assert len(calls) == 1  # the lease alone: nothing to write yet
        first, second = list(sink.inflight)
        loop.report(Delivered(first))
        loop.report(Retry(second, "disconnected"))
        del sink.inflight[first], sink.inflight[second]
        calls.clear()
        assert await loop.cycle() == 0.0
        assert len(calls) == 1  # ack, nack and lease together
        assert status.sent == 1
        # The nack landed before the lease: the retried item is leased again, in place.
        assert sorted(i.payload["n"] for i in sink.inflight.values()) == [1, 2]
        assert next(i for i in sink.inflight.values() if i.id == second).attempts == 1
        assert remaining(outbox) == [1, 2, 3, 4]


async def test_outcomes_alone_when_the_window_is_full(tmp_path: Path, calls: list[str]) -> None:
    status = ForwarderStatus()
    sink = Window(2)
    with Outbox.open(tmp_path / "outbox", 10_000_000) as outbox:
        for n in range(3):
            outbox.put({"n": n})
        loop = make_loop(sink, outbox, status)
        await loop.cycle()
        first = next(iter(sink.inflight))
        loop.report(Delivered(first))  # reported, still counted in flight by the sink
        calls.clear()
        assert await loop.cycle() is None  # written, nothing started: idle, as before
        assert calls == ["_write"]  # no lease without room
        assert status.sent == 1 and remaining(outbox) == [1, 2]


async def test_a_backoff_is_written_and_paused_without_leasing(
    tmp_path: Path, calls: list[str]
) -> None:
    status = ForwarderStatus()
    sink = Window(1)
    with Outbox.open(tmp_path / "outbox", 10_000_000) as outbox:
        outbox.put({"n": 0})
        loop = make_loop(sink, outbox, status)
        await loop.cycle()
        [item_id] = list(sink.inflight)
        del sink.inflight[item_id]
        loop.report(Retry(item_id, "refused", backoff=True))
        calls.clear()
        pause = await loop.cycle()
        assert pause is not None and 0.0 < pause <= 1.0
        assert calls == ["_write"] and sink.inflight == {}
        assert [i.attempts for i in outbox.peek(1)] == [1]


async def test_a_cancel_during_the_call_keeps_the_writes_and_gives_the_lease_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status = ForwarderStatus()
    sink = Window(2)
    with Outbox.open(tmp_path / "outbox", 10_000_000) as outbox:
        for n in range(4):
            outbox.put({"n": n})
        loop = make_loop(sink, outbox, status)
        await loop.cycle()
        first, second = list(sink.inflight)
        loop.report(Delivered(first))
        loop.report(Delivered(second))
        sink.inflight.clear()
        lease = outbox.lease
        started = asyncio.Event()
        event_loop = asyncio.get_running_loop()

        def slow_lease(count: int) -> Any:
            event_loop.call_soon_threadsafe(started.set)
            time.sleep(0.3)
            return lease(count)

        monkeypatch.setattr(outbox, "lease", slow_lease)
        cycle = asyncio.create_task(loop.cycle())
        await started.wait()
        cycle.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cycle
        assert sink.inflight == {}  # nothing handed to the sink
        assert status.sent == 2  # the acks landed and were counted
        assert remaining(outbox) == [2, 3]
        monkeypatch.setattr(outbox, "lease", lease)
        assert [i.payload["n"] for i in outbox.lease(10)] == [2, 3]  # not held by anyone


async def test_a_failed_lease_after_the_writes_asks_for_the_lease_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: list[str]
) -> None:
    status = ForwarderStatus()
    sink = Window(1)
    with Outbox.open(tmp_path / "outbox", 10_000_000) as outbox:
        for n in range(2):
            outbox.put({"n": n})
        loop = make_loop(sink, outbox, status)
        await loop.cycle()
        [item_id] = list(sink.inflight)
        del sink.inflight[item_id]
        loop.report(Delivered(item_id))

        def failing_lease(count: int) -> Any:
            raise OutboxError("lease failed: disk I/O error")

        monkeypatch.setattr(outbox, "lease", failing_lease)
        calls.clear()
        assert await loop.cycle() == 3.0
        assert len(calls) == 1
        assert status.sent == 1 and "disk I/O error" in (status.last_error or "")
        assert remaining(outbox) == [1]


async def test_a_loop_without_the_option_keeps_its_two_calls(
    tmp_path: Path, calls: list[str]
) -> None:
    """MaintainX's plant sink delivers in its pump: its acks are written before the next
    request, as before."""
    status = ForwarderStatus()
    sink = Window(1)
    with Outbox.open(tmp_path / "outbox", 10_000_000) as outbox:
        for n in range(2):
            outbox.put({"n": n})
        loop = make_two_call_loop(sink, outbox, status)
        await loop.cycle()
        [item_id] = list(sink.inflight)
        del sink.inflight[item_id]
        loop.report(Delivered(item_id))
        calls.clear()
        assert await loop.cycle() == 0.0
        assert calls == ["_write", "lease"]


def test_an_ordered_loop_cannot_lease_with_its_writes(tmp_path: Path) -> None:
    with Outbox.open(tmp_path / "outbox", 10_000_000) as outbox, pytest.raises(ValueError):
        DeliveryLoop(
            Window(1),
            outbox,
            ForwarderStatus(),
            log,
            WORDS,
            backoff=Backoff(initial_s=1.0, max_s=60.0),
            lease_retry_s=lambda: 3.0,
            ordered=True,
            lease_with_writes=True,
        )


async def test_an_ordered_loop_still_writes_before_it_leases(
    tmp_path: Path, calls: list[str]
) -> None:
    """MaintainX's loop keeps its two calls: an ack that failed there puts back what
    was leased after the item, which a lease in the same call would have to undo."""
    status = ForwarderStatus()
    sink = OneAtATime({})
    with Outbox.open(tmp_path / "outbox", 10_000_000) as outbox:
        for n in range(3):
            outbox.put({"n": n})
        loop = make_loop(sink, outbox, status, prefetch=1, ordered=True)
        sink.loop = loop
        assert await loop.cycle() == 0.0
        assert calls == ["lease", "_write"]
        assert status.sent == 1
