"""A PLC that stays down is one warning in the journal, not one per connect attempt: with a
connect tried every ``max(poll, 5 s)`` (issue 21 §3) a weekend outage wrote ~35,000
"modbus connection down" warnings. The first failure warns, a changed reason warns, a
reminder comes every ``OUTAGE_REMINDER_S``; the other attempts log at debug. The next
outage after a reconnect warns again."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence

import pytest

from edge_agent.config.models import Register, RegisterTable
from edge_agent.readings import Reading
from edge_agent.sources.modbus.source import ModbusSource

from .conftest import DEFAULTS, PlantThread, sensor, tcp
from .test_reconnect import wait_for


def _down_warnings(caplog: pytest.LogCaptureFixture) -> int:
    return sum(
        1
        for r in caplog.records
        if r.getMessage() == "modbus connection down" and r.levelno >= logging.WARNING
    )


async def test_a_long_outage_warns_once_and_the_next_one_warns_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="edge_agent.sources.modbus")
    plant = PlantThread(registers=16, bits=16, profiles=False)
    connection = tcp(
        plant.port, poll="50ms", timeout="200ms", backoff={"initial": "10ms", "max": "20ms"}
    )
    register = Register(table=RegisterTable.HOLDING, address=2)
    source = ModbusSource(
        "plc", connection, {"x": sensor(register)}, DEFAULTS, rng=random.Random(3)
    )
    batches: list[Reading] = []

    async def sink(readings: Sequence[Reading]) -> None:
        batches.extend(readings)

    task = asyncio.create_task(source.run(sink))
    try:
        await wait_for(lambda: any(r.is_good for r in batches))
        await asyncio.to_thread(plant.stop)  # the source's loop keeps running meanwhile
        attempts = source.stats.connect_attempts
        await wait_for(lambda: source.stats.connect_attempts >= attempts + 6)
        assert _down_warnings(caplog) == 1
        await asyncio.to_thread(plant.start)
        seen = len(batches)
        await wait_for(lambda: any(r.is_good for r in batches[seen:]), limit=1500)
        await asyncio.to_thread(plant.stop)
        attempts = source.stats.connect_attempts
        await wait_for(lambda: source.stats.connect_attempts >= attempts + 3)
        assert _down_warnings(caplog) == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        plant.close()
