"""Cancelling a Modbus source always stops it. pymodbus connects inside ``asyncio.wait_for``;
on Python 3.11, a cancellation that lands just as that connect fails (a refused port fails
in microseconds) comes back as a failed attempt, not as ``CancelledError``: ``run`` went on
polling, and whoever cancelled it (a stop, a reload replacing the source) waited for ever
(seen as a test that hung for its full 300 s while the source kept reconnecting)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

from edge_agent.config.models import Register, RegisterTable
from edge_agent.readings import Reading
from edge_agent.sources.modbus.source import ModbusSource
from tests.conftest import free_port

from .conftest import DEFAULTS, PlantThread, sensor, tcp


async def _sink(readings: Sequence[Reading]) -> None:
    return None


async def test_cancelling_a_source_whose_device_refuses_always_stops_it() -> None:
    # Nothing listens on the port: every connect is refused at once, and with a 1 ms poll and
    # backoff the source is inside a connect most of the time.
    connection = tcp(
        free_port(), poll="1ms", timeout="200ms", backoff={"initial": "1ms", "max": "2ms"}
    )
    register = Register(table=RegisterTable.HOLDING, address=0)
    rng = random.Random(23)
    lost = 0
    for _ in range(200):
        source = ModbusSource(
            "plc", connection, {"x": sensor(register)}, DEFAULTS, rng=random.Random(1)
        )
        task = asyncio.create_task(source.run(_sink))
        await asyncio.sleep(rng.uniform(0.0, 0.02))
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        if not done:
            lost += 1
            source.interval_s = 3600.0  # let the runaway task rest, then end it for good
            task.cancel()
    assert lost == 0, f"{lost} of 200 cancelled sources went on polling"


async def test_cancelling_a_source_that_is_reading_always_stops_it() -> None:
    """The same for a cancellation that lands while pymodbus awaits an answer (its
    requests also wait inside ``wait_for``): a live device polled every millisecond."""
    plant = PlantThread(registers=16, bits=16, profiles=False)
    try:
        connection = tcp(plant.port, poll="1ms", timeout="200ms")
        register = Register(table=RegisterTable.HOLDING, address=0)
        rng = random.Random(29)
        lost = 0
        for _ in range(100):
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
        assert lost == 0, f"{lost} of 100 cancelled sources went on polling"
    finally:
        plant.close()
