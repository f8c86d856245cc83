"""While the PLC is down, a connect is tried at least every ``max(poll, 5 s)``, however far
the backoff has grown: a simulator restart is noticed within seconds, not after a minute."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence

from edge_agent.common.backoff import PROBE_EVERY_S, probe_cap_s
from edge_agent.config.models import Register, RegisterTable
from edge_agent.readings import Reading
from edge_agent.sources.modbus.source import ModbusSource

from .conftest import DEFAULTS, PlantThread, sensor, tcp
from .test_reconnect import wait_for

POLL_S = 0.2


def test_probe_cap_keeps_attempts_within_max_of_poll_and_five_seconds() -> None:
    assert probe_cap_s(1.0) == PROBE_EVERY_S - 1.0
    assert probe_cap_s(0.2) + 0.2 == PROBE_EVERY_S
    assert probe_cap_s(10.0) == 0.0  # every poll: the poll is already slower than 5 s


async def test_a_restarted_simulator_is_reconnected_within_five_seconds() -> None:
    plant = PlantThread(registers=16, bits=16, profiles=False)
    # A backoff that starts at 30 s: uncapped, the first retry would be up to 30 s away.
    connection = tcp(
        plant.port, poll="200ms", timeout="200ms", backoff={"initial": "30s", "max": "60s"}
    )
    register = Register(table=RegisterTable.HOLDING, address=2)
    plant.run_sync(lambda: plant.plant.set_registers("holding", 2, [42]))
    source = ModbusSource(
        "plc", connection, {"x": sensor(register)}, DEFAULTS, rng=random.Random(2)
    )
    batches: list[Reading] = []

    async def sink(readings: Sequence[Reading]) -> None:
        batches.extend(readings)

    task = asyncio.create_task(source.run(sink))
    try:
        await wait_for(lambda: any(r.is_good for r in batches))
        plant.stop()
        attempts = source.stats.connect_attempts
        await wait_for(lambda: source.stats.connect_attempts > attempts)
        await wait_for(lambda: not source.stats.connected)
        # Deterministic part: the next connect is scheduled within the probe cap.
        retry_in = source._next_connect_at - time.monotonic()
        assert retry_in <= probe_cap_s(POLL_S), retry_in
        plant.start()
        back_at = time.monotonic()
        seen = len(batches)
        await wait_for(lambda: any(r.is_good for r in batches[seen:]), limit=1500)
        reconnect_s = time.monotonic() - back_at
        print(f"reconnected {reconnect_s:.2f} s after the simulator came back")
        # Generous: the schedule above already proves the bound; this catches a stuck loop.
        assert reconnect_s < 3 * PROBE_EVERY_S
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        plant.close()
