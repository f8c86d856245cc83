"""The MQTT forwarder's cycle takes the outcomes and the hub's writes for its one worker
call, then runs the sink's pump (which may wait: it saves the hub presence in the outbox),
then writes and leases. A cancel (a stop, a reload) or an error while the pump waits must
not drop what was taken: the acks, the nacks (their items would stay leased by nobody and
later events of the same alert could overtake them) and the hub's writes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.forwarders.delivery import Delivered, Retry
from edge_agent.interfaces import ForwarderStatus
from edge_agent.outbox import Outbox

from .test_delivery_loop import Window, remaining
from .test_delivery_loop_one_call import make_loop


class WaitingPump(Window):
    """A window whose pump waits on the event loop when told to (as the MQTT forwarder's
    does while it saves a changed hub presence), and which has writes of its own."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.fail: BaseException | None = None
        self.writes: list[str] = []
        self.pending_write = False

    async def pump(self) -> int:
        if self.gate is not None:
            self.entered.set()
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return 0

    def take_writes(self) -> Callable[[], int] | None:
        if not self.pending_write:
            return None
        self.pending_write = False
        return lambda: self.writes.append("hub writes") or 0


async def _interrupted_cycle(tmp_path: Path, how: str) -> None:
    status = ForwarderStatus()
    sink = WaitingPump(2)
    with Outbox.open(tmp_path / "outbox", 10_000_000) as outbox:
        for n in range(4):
            outbox.put({"n": n})
        loop = make_loop(sink, outbox, status)
        await loop.cycle()
        first, second = list(sink.inflight)
        loop.report(Delivered(first))
        loop.report(Retry(second, "disconnected"))
        sink.inflight.clear()
        sink.pending_write = True
        sink.gate = asyncio.Event()
        if how == "error":
            sink.fail = RuntimeError("pump failed")
        cycle = asyncio.create_task(loop.cycle())
        await sink.entered.wait()
        if how == "cancel":
            cycle.cancel()
        else:
            sink.gate.set()
        with pytest.raises((asyncio.CancelledError, RuntimeError)):
            await cycle
        # What the forwarder does as it stops: write what is left, give back what it holds.
        await loop.settle(pausing=False)
        loop.release_on_stop()
        assert status.sent == 1 and sink.writes == ["hub writes"]
        assert remaining(outbox) == [1, 2, 3]
        # The retried item is free again, first, with its attempt counted: not held by
        # a lease nobody knows about.
        assert [(i.payload["n"], i.attempts) for i in outbox.lease(10)] == [
            (1, 1),
            (2, 0),
            (3, 0),
        ]


async def test_a_cancel_while_the_pump_waits_keeps_the_cycles_writes(tmp_path: Path) -> None:
    await _interrupted_cycle(tmp_path, "cancel")


async def test_a_pump_that_fails_keeps_the_cycles_writes(tmp_path: Path) -> None:
    await _interrupted_cycle(tmp_path, "error")
