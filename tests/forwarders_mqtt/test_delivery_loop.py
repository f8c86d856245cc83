"""The delivery loop both forwarders run (edge_agent.forwarders.delivery.DeliveryLoop), on a
real outbox, with the two kinds of sink the forwarders are: one that knows each outcome
when the call returns and takes one item at a time in order (MaintainX), and one that
keeps a window in flight and learns outcomes later (MQTT)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from edge_agent.common.backoff import Backoff
from edge_agent.forwarders.delivery import (
    DeadLetter,
    Delivered,
    DeliveryLoop,
    Outcome,
    Retry,
    Sink,
    Words,
)
from edge_agent.interfaces import ForwarderStatus, OutboxItem
from edge_agent.outbox import Outbox
from edge_agent.outbox.store import OutboxError

log = logging.getLogger("tests.delivery_loop")
WORDS = Words(lease_failed="lease failed", ack_failed="ack failed", nack_failed="nack failed")


class OneAtATime:
    """Answers each item at once, from ``answers`` by payload ``n`` (default: delivered)."""

    def __init__(self, answers: dict[int, Callable[[OutboxItem], Outcome]]) -> None:
        self.answers = answers
        self.seen: list[int] = []
        self.loop: DeliveryLoop | None = None

    def free(self) -> int:
        return 1

    async def submit(self, item: OutboxItem) -> bool:
        assert self.loop is not None
        self.seen.append(item.payload["n"])
        answer = self.answers.get(item.payload["n"])
        self.loop.report(answer(item) if answer is not None else Delivered(item.id))
        return True

    async def pump(self) -> int:
        return 0

    def take_writes(self) -> Callable[[], int] | None:
        return None

    def ack_failed(self, exc: OutboxError) -> float:
        return 7.0


class Window:
    """Holds up to ``size`` items in flight; the test answers them later."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.inflight: dict[int, OutboxItem] = {}

    def free(self) -> int:
        return self.size - len(self.inflight)

    async def submit(self, item: OutboxItem) -> bool:
        if item.id in self.inflight:
            return False
        self.inflight[item.id] = item
        return True

    async def pump(self) -> int:
        return 0

    def take_writes(self) -> Callable[[], int] | None:
        return None

    def ack_failed(self, exc: OutboxError) -> float:
        raise AssertionError("not ordered: never asked")


def make_loop(
    sink: Sink, outbox: Outbox, status: ForwarderStatus, *, prefetch: int = 0, ordered: bool = False
) -> DeliveryLoop:
    return DeliveryLoop(
        sink,
        outbox,
        status,
        log,
        WORDS,
        backoff=Backoff(initial_s=1.0, max_s=60.0),
        lease_retry_s=lambda: 3.0,
        prefetch=prefetch,
        ordered=ordered,
    )


def remaining(outbox: Outbox) -> list[int]:
    return [i.payload["n"] for i in outbox.peek(100)]


async def test_an_ordered_retry_puts_back_the_item_and_all_after_it(tmp_path: Path) -> None:
    status = ForwarderStatus()
    dead: list[int] = []
    sink = OneAtATime(
        {
            1: lambda i: DeadLetter(i.id, "never", lambda: dead.append(i.payload["n"])),
            2: lambda i: Retry(i.id, "busy", delay=5.0),
        }
    )
    with Outbox.open(tmp_path / "outbox", 10_000_000) as outbox:
        for n in range(5):
            outbox.put({"n": n})
        loop = make_loop(sink, outbox, status, prefetch=10, ordered=True)
        sink.loop = loop
        # 0 delivered, 1 dead-lettered, 2 retried: 2, 3, 4 go back in place, 3 and 4 unseen.
        assert await loop.cycle() == 5.0
        assert sink.seen == [0, 1, 2]
        assert remaining(outbox) == [2, 3, 4]
        assert [d.reason for d in outbox.dead_letters()] == ["never"] and dead == [1]
        assert status.sent == 1 and status.dead_lettered == 1
        assert loop.leased() == []
        # The retry: everything goes, in order.
        sink.answers.clear()
        assert await loop.cycle() == 0.0
        assert sink.seen == [0, 1, 2, 2, 3, 4] and remaining(outbox) == []
        assert status.sent == 4
        assert await loop.cycle() is None  # nothing left: idle


async def test_a_window_takes_what_is_free_and_settles_later_outcomes_together(
    tmp_path: Path,
) -> None:
    status = ForwarderStatus()
    sink = Window(3)
    with Outbox.open(tmp_path / "outbox", 10_000_000) as outbox:
        for n in range(5):
            outbox.put({"n": n})
        loop = make_loop(sink, outbox, status)
        assert await loop.cycle() == 0.0
        assert sorted(i.payload["n"] for i in sink.inflight.values()) == [0, 1, 2]
        assert await loop.cycle() is None  # the window is full: nothing to do
        # Answers arrive later (PUBACKs): each one ends the idle wait.
        first, second, third = list(sink.inflight)
        loop.wake.arm()
        loop.report(Delivered(first))
        await asyncio.wait_for(loop.wake.idle(3600.0), 5.0)
        loop.report(Retry(second, "refused", backoff=True))
        loop.report(Retry(third, "refused", backoff=True))
        for item_id in (first, second, third):
            del sink.inflight[item_id]
        # One pause for both refusals: the backoff's first step.
        pause = await loop.cycle()
        assert pause is not None and 0.0 < pause <= 1.0
        assert status.sent == 1 and remaining(outbox) == [1, 2, 3, 4]
        assert await loop.cycle() == 0.0
        assert sorted(i.payload["n"] for i in sink.inflight.values()) == [1, 2, 3]


async def test_a_stop_gives_back_what_was_leased_and_not_settled(tmp_path: Path) -> None:
    status = ForwarderStatus()
    sink = Window(2)
    with Outbox.open(tmp_path / "outbox", 10_000_000) as outbox:
        for n in range(3):
            outbox.put({"n": n})
        loop = make_loop(sink, outbox, status, prefetch=3)
        await loop.cycle()
        assert len(loop.leased()) == 1  # leased three, two in flight
        loop.strand("disconnected")
        loop.report(Retry(next(iter(sink.inflight)), "disconnected"))
        loop.release_on_stop()
        assert loop.leased() == []
        # The two stranded ones are free again; the third is still leased by the window.
        assert len(outbox.lease(10)) == 2


async def test_a_failed_lease_asks_for_the_sinks_pause(tmp_path: Path) -> None:
    status = ForwarderStatus()
    with Outbox.open(tmp_path / "outbox", 10_000_000) as outbox:
        loop = make_loop(Window(2), outbox, status)
        outbox.close()
        assert await loop.cycle() == 3.0
        assert status.last_error
