"""The simulated Modbus plant: its command line, profiles and fault injection."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

from edge_agent.readings import Reading
from edge_agent.simulators.modbus import DEMO_POINTS, ModbusPlant
from edge_agent.sources.modbus.source import NOT_RESPONDING, ModbusSource
from tests.conftest import free_port, wait_for_port

from .conftest import DEFAULTS, sensor, tcp


def demo_source(port: int, **overrides: object) -> ModbusSource:
    sensors = {p.sensor_id: sensor(p.register, scale=p.scale) for p in DEMO_POINTS}
    return ModbusSource("plc1", tcp(port, **overrides), sensors, DEFAULTS)


async def read(port: int, **overrides: object) -> dict[str, Reading]:
    source = demo_source(port, **overrides)
    try:
        return {r.sensor_id: r for r in await source.read_once()}
    finally:
        await source.close()


def test_simulate_modbus_command_serves_the_demo_plant() -> None:
    port = free_port()
    process = subprocess.Popen(
        # Control on any free port: the default (the port after) may be taken by a neighbour.
        [sys.executable, "-m", "edge_agent", "simulate", "modbus", "--port", str(port)]
        + ["--control-port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout_s=30)  # a Python process start
        readings = asyncio.run(read(port))
        assert all(r.is_good for r in readings.values())
        values: dict[str, Any] = {sid: r.value for sid, r in readings.items()}
        assert 1.5 < values["p101_vibration"] < 3.5
        assert 3.5 < values["p101_pressure"] < 5.0
        assert 100 < values["p101_flow"] < 140
        assert 25 < values["m201_current"] < 45
        assert values["p101_running"] is True and values["m201_running"] is True
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert f"127.0.0.1:{port}" in out


async def test_ramp_hold_and_release_move_a_demo_sensor() -> None:
    async with ModbusPlant(profiles=False) as plant:
        plant.ramp("p101_vibration", 9.0, over_s=0.0)
        plant.tick()
        assert (await read(plant.port))["p101_vibration"].value == pytest.approx(9.0)
        plant.set_value("p101_running", False)
        plant.set_value("p101_pressure", 1.5)
        plant.tick()
        readings = await read(plant.port)
        assert readings["p101_running"].value is False
        assert readings["p101_pressure"].value == pytest.approx(1.5)
        plant.release("p101_pressure")
        plant.tick()
        pressure = (await read(plant.port))["p101_pressure"].value
        assert isinstance(pressure, float) and 3.5 < pressure < 5.0


async def test_a_silent_unit_never_answers() -> None:
    async with ModbusPlant(profiles=False) as plant:
        plant.silence_unit(1)
        readings = await read(plant.port, timeout="100ms")
        assert {r.reason for r in readings.values()} == {NOT_RESPONDING}
        assert plant.requests_for(1) == 1  # one probe, then the unit is skipped this cycle


async def test_a_device_failure_marks_the_block_bad_with_the_exception_named() -> None:
    async with ModbusPlant(profiles=False) as plant:
        plant.add_exception("holding", 10, 1, code=4)
        readings = await read(plant.port)
        # p101_vibration (0), p101_pressure (2) and m201_current (10) share one request.
        for sid in ("p101_vibration", "p101_pressure", "m201_current"):
            assert readings[sid].reason == "exception 4 (server device failure)"
        assert readings["p101_flow"].is_good and readings["p101_running"].is_good
