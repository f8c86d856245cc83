"""Server stopped and restarted: bad readings while down, good after, connection attempts
bounded by the backoff (no storm), for Modbus TCP, RTU over TCP and RTU on a pyserial
``socket://`` URL served by ``ModbusSerialServer``."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from edge_agent.config.models import ModbusRtu, ModbusTcp, Register, RegisterTable
from edge_agent.readings import Reading
from edge_agent.sources.modbus.source import ModbusSource

from .conftest import DEFAULTS, PlantThread, rtu, sensor, tcp

OUTAGE_CYCLES = 20
POLL = {"poll": "50ms", "timeout": "200ms", "backoff": {"initial": "100ms", "max": "400ms"}}


@pytest.fixture(params=["tcp", "rtu-over-tcp", "serial"])
def restartable(request: pytest.FixtureRequest) -> Iterator[PlantThread]:
    served = PlantThread(transport=request.param, registers=64, bits=64, profiles=False)
    try:
        yield served
    finally:
        served.close()


def connection_for(plant: PlantThread, **extra: Any) -> ModbusTcp | ModbusRtu:
    transport = plant.plant.transport
    if transport == "serial":
        return rtu(plant.plant.url, **POLL, **extra)
    return tcp(plant.port, framer="socket" if transport == "tcp" else "rtu", **POLL, **extra)


async def wait_for(predicate: Any, limit: int = 500) -> None:
    for _ in range(limit):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


async def test_restart_gives_bad_then_good_readings_without_a_connect_storm(
    restartable: PlantThread,
) -> None:
    plant = restartable
    register = Register(table=RegisterTable.HOLDING, address=5)
    plant.run_sync(lambda: plant.plant.set_registers("holding", 5, [777]))
    source = ModbusSource(
        "plc", connection_for(plant), {"x": sensor(register)}, DEFAULTS, rng=random.Random(5)
    )
    batches: list[Reading] = []

    async def sink(readings: Sequence[Reading]) -> None:
        batches.extend(readings)

    task = asyncio.create_task(source.run(sink))
    try:
        await wait_for(lambda: sum(r.is_good for r in batches) >= 3)
        assert source.stats.connect_attempts == 1

        plant.stop()
        down_at = len(batches)
        attempts_before = source.stats.connect_attempts
        await wait_for(lambda: len(batches) - down_at >= OUTAGE_CYCLES + 2)
        # The cycle in flight at the moment of the stop may still read good; then bad.
        outage = batches[down_at + 2 :]
        assert outage and all(not r.is_good for r in outage)
        reasons = {r.reason for r in outage}
        assert reasons and all(
            "connect" in (x or "") or "not responding" in (x or "") for x in reasons
        ), reasons
        attempts = source.stats.connect_attempts - attempts_before
        # No storm: never more than one attempt per cycle, and the backoff skips cycles.
        assert 1 <= attempts <= len(outage) // 2, (attempts, len(outage))

        plant.start()
        up_at = len(batches)
        await wait_for(lambda: any(r.is_good for r in batches[up_at:]))
        assert [r.value for r in batches[up_at:] if r.is_good][0] == 777
        assert source.stats.connected
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_closed_port_is_a_bad_reading_not_an_exception() -> None:
    from tests.conftest import free_port

    register = Register(table=RegisterTable.HOLDING, address=0)
    source = ModbusSource(
        "plc", tcp(free_port(), timeout="200ms"), {"x": sensor(register)}, DEFAULTS
    )
    (reading,) = await source.read_once()
    assert not reading.is_good
    assert reading.reason is not None and "cannot connect" in reading.reason
    assert source.stats.connect_attempts == 1


async def test_serial_requests_are_spaced_by_request_delay() -> None:
    plant = PlantThread(transport="serial", registers=64, bits=64, profiles=False)
    try:
        sensors = {
            "h": sensor(Register(table=RegisterTable.HOLDING, address=1)),
            "i": sensor(Register(table=RegisterTable.INPUT, address=1)),
            "c": sensor(Register(table=RegisterTable.COIL, address=1)),
        }
        source = ModbusSource("bus", rtu(plant.plant.url, request_delay="40ms"), sensors, DEFAULTS)
        try:
            readings = await source.read_once()
        finally:
            await source.close()
        assert all(r.is_good for r in readings)
        times = [entry[0] for entry in plant.plant.store.log]
        assert len(times) == 3
        assert all(b - a >= 0.039 for a, b in zip(times, times[1:], strict=False))
    finally:
        plant.close()


async def test_a_serial_device_that_does_not_exist_is_a_bad_reading(tmp_path) -> None:
    register = Register(table=RegisterTable.HOLDING, address=0)
    missing = str(tmp_path / "ttyUSB9")
    source = ModbusSource("bus", rtu(missing), {"x": sensor(register)}, DEFAULTS)
    (reading,) = await source.read_once()
    await source.close()
    assert not reading.is_good
    assert reading.reason == f"cannot connect to {missing}"


async def test_a_dead_unit_on_a_serial_bus_does_not_stall_the_healthy_one() -> None:
    # RTU frames over a serial line (pyserial socket://): a silent device costs one timeout
    # now and then, never a timeout on every cycle.
    plant = PlantThread(transport="serial", units=(1, 2), registers=64, bits=64, profiles=False)
    try:
        plant.run_sync(lambda: plant.plant.set_registers("holding", 3, [111]))
        plant.run_sync(lambda: plant.plant.silence_unit(2))
        register = Register(table=RegisterTable.HOLDING, address=3)
        source = ModbusSource(
            "bus",
            rtu(
                plant.plant.url,
                poll="50ms",
                timeout="150ms",
                backoff={"initial": "300ms", "max": "2s"},
            ),
            {"healthy": sensor(register, unit_id=1), "dead": sensor(register, unit_id=2)},
            DEFAULTS,
            rng=random.Random(11),
        )
        batches: list[dict[str, Reading]] = []

        async def sink(readings: Sequence[Reading]) -> None:
            batches.append({r.sensor_id: r for r in readings})

        task = asyncio.create_task(source.run(sink))
        try:
            await wait_for(lambda: len(batches) >= 12)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        cycles = len(batches)
        assert all(b["healthy"].value == 111 and b["healthy"].is_good for b in batches)
        assert all(b["dead"].reason == "device not responding" for b in batches)
        units = [unit for _, unit, _, _, _ in plant.plant.store.log]
        assert 1 <= units.count(2) <= cycles // 2
        assert all(units[i : i + 2] != [2, 2] for i in range(len(units) - 1)), units
    finally:
        plant.close()
