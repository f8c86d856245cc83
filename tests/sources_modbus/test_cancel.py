"""Cancelling a Modbus source always stops it. pymodbus connects and awaits its answers
inside ``asyncio.wait_for``; on Python 3.11, a cancellation that lands just as that call ends
(a refused port fails in microseconds, a live device answers in a millisecond) comes back as
the call's result, not as ``CancelledError``: ``run`` went on polling, and whoever cancelled
it (a stop, a reload replacing the source) waited for ever (seen as a test that hung for its
full 300 s while the source kept reconnecting)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

from edge_agent.config.models import ModbusTcp, Register, RegisterTable
from edge_agent.readings import Reading
from edge_agent.sources.modbus.source import ModbusSource
from tests.conftest import free_port

from .conftest import DEFAULTS, PlantThread, sensor, tcp


async def _sink(readings: Sequence[Reading]) -> None:
    return None


async def lost_cancellations(connection: ModbusTcp, tries: int, seed: int) -> int:
    """How many of ``tries`` sources, each cancelled at a random moment of its first
    polls, were still running 5 s later (each such one is then put to rest and ended)."""
    register = Register(table=RegisterTable.HOLDING, address=0)
    rng = random.Random(seed)
    lost = 0
    for _ in range(tries):
        source = ModbusSource(
            "plc", connection, {"x": sensor(register)}, DEFAULTS, rng=random.Random(1)
        )
        task = asyncio.create_task(source.run(_sink))
        await asyncio.sleep(rng.uniform(0.0, 0.03))
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        if not done:
            lost += 1
            source.interval_s = 3600.0
            task.cancel()
    return lost


async def test_cancelling_a_source_whose_device_refuses_always_stops_it() -> None:
    # Nothing listens on the port: every connect is refused at once, and with a 1 ms poll and
    # backoff the source is inside a connect most of the time (33 of 200 lost before).
    connection = tcp(
        free_port(), poll="1ms", timeout="200ms", backoff={"initial": "1ms", "max": "2ms"}
    )
    assert await lost_cancellations(connection, 200, seed=23) == 0


async def test_cancelling_a_source_that_is_reading_always_stops_it() -> None:
    # A live device polled every millisecond: the source mostly awaits an answer (29 of 100
    # lost before).
    plant = PlantThread(registers=16, bits=16, profiles=False)
    try:
        connection = tcp(plant.port, poll="1ms", timeout="200ms")
        assert await lost_cancellations(connection, 100, seed=29) == 0
    finally:
        plant.close()
