"""``source_read_errors_total`` is not 0 while the PLC is down (issue 21 §3): a poll cycle
with the connection down, whose readings are all bad, is a failed read."""

from __future__ import annotations

from edge_agent.config.models import Register, RegisterTable
from edge_agent.sources.modbus.source import ModbusSource
from tests.conftest import free_port

from .conftest import DEFAULTS, PlantThread, sensor, tcp


async def test_cycles_with_the_connection_down_count_as_read_errors() -> None:
    register = Register(table=RegisterTable.HOLDING, address=0)
    source = ModbusSource(
        "plc", tcp(free_port(), timeout="200ms"), {"x": sensor(register)}, DEFAULTS
    )
    for _ in range(3):
        (reading,) = await source.poll_once()  # the backoff skips some connects: still bad
        assert not reading.is_good
    await source.close()
    assert source.stats.read_errors == 3
    assert source.stats.reads == 0


async def test_good_cycles_count_no_read_error() -> None:
    plant = PlantThread(registers=8, bits=8, profiles=False)
    try:
        register = Register(table=RegisterTable.HOLDING, address=0)
        source = ModbusSource("plc", tcp(plant.port), {"x": sensor(register)}, DEFAULTS)
        for _ in range(3):
            (reading,) = await source.poll_once()
            assert reading.is_good
        await source.close()
        assert (source.stats.read_errors, source.stats.reads) == (0, 3)
    finally:
        plant.close()
