"""A poll cycle's readings come out in configuration order, one per sensor, whatever order
the plan read them in (the cycle's map is handed over as it is only when it already holds
every sensor in that order)."""

from __future__ import annotations

import random

from edge_agent.readings import Quality
from edge_agent.sources.modbus.source import ILLEGAL_DATA_ADDRESS, ModbusSource
from tests.conftest import free_port

from .conftest import DEFAULTS, PlantThread, sensor, tcp

ORDER_BASE = 3600
REFUSED = 4500  # beyond the plant's 4,096 registers: "illegal data address"


async def test_readings_follow_the_configuration_not_the_plan(plant: PlantThread) -> None:
    addresses = list(range(ORDER_BASE, ORDER_BASE + 12))
    random.Random(7).shuffle(addresses)
    sensors = {
        f"s{address}": sensor({"table": "holding", "address": address}) for address in addresses
    }
    plant.run_sync(
        lambda: plant.plant.set_registers("holding", ORDER_BASE, list(range(len(addresses))))
    )
    source = ModbusSource("plc", tcp(plant.port), sensors, DEFAULTS)
    try:
        readings = await source.read_once()
        again = await source.poll_once()
    finally:
        await source.close()
    for cycle in (readings, again):
        assert [r.sensor_id for r in cycle] == list(sensors)
        assert [r.value for r in cycle] == [a - ORDER_BASE for a in addresses]
        assert all(r.quality is Quality.GOOD for r in cycle)


async def test_in_order_cycle_and_refused_sensor_keep_the_configuration_order(
    plant: PlantThread,
) -> None:
    # Configured in address order (the map is handed over as it is), then a sensor the
    # device refuses in the middle: its bad reading is collected first in later cycles.
    sensors = {
        "first": sensor({"table": "holding", "address": ORDER_BASE + 20}),
        "refused": sensor({"table": "holding", "address": REFUSED}),
        "last": sensor({"table": "holding", "address": ORDER_BASE + 21}),
    }
    plant.run_sync(lambda: plant.plant.set_registers("holding", ORDER_BASE + 20, [5, 6]))
    source = ModbusSource("plc", tcp(plant.port), sensors, DEFAULTS)
    try:
        cycles = [await source.read_once(), await source.poll_once(), await source.poll_once()]
    finally:
        await source.close()
    assert source.refused_sensors == {"refused"}
    for cycle in cycles:
        assert [r.sensor_id for r in cycle] == ["first", "refused", "last"]
        first, refused, last = cycle
        assert (first.value, first.quality) == (5, Quality.GOOD)
        assert (refused.value, refused.quality, refused.reason) == (
            None,
            Quality.BAD,
            ILLEGAL_DATA_ADDRESS,
        )
        assert (last.value, last.quality) == (6, Quality.GOOD)


async def test_every_sensor_in_order_reads_bad_while_the_device_is_down() -> None:
    sensors = {f"s{i}": sensor({"table": "holding", "address": 9 - i}) for i in range(5)}
    source = ModbusSource("plc", tcp(free_port(), timeout="200ms"), sensors, DEFAULTS)
    try:
        readings = await source.read_once()
    finally:
        await source.close()
    assert [r.sensor_id for r in readings] == list(sensors)
    assert all(r.quality is Quality.BAD and r.reason for r in readings)
