"""The demo's scenario: what happens to the plant and the network, and when.

Times are seconds from the start (at the default pace). Within about 30 seconds a pump
bearing overheats and a work order appears, a sensor goes bad, the pump trips and runs again
(its downtime reaches MaintainX beside its run-hours meter), the network to MaintainX
drops, a motor overheats while it is down (its work order waits in the outbox), and the
network comes back and the buffered work order arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from edge_agent.demo.plant import DemoPlant

Action = Callable[[DemoPlant], Awaitable[None]]


@dataclass(frozen=True)
class Step:
    at_s: float
    says: str
    action: Action


async def _bearing_heats_up(plant: DemoPlant) -> None:
    await plant.opcua.ramp("Line1.P101.BearingTemp", 97.0, 6.0)


async def _sensor_goes_bad(plant: DemoPlant) -> None:
    await plant.opcua.set_status("Line1.M201.Vibration", "BadSensorFailure")


async def _pump_trips(plant: DemoPlant) -> None:
    plant.modbus.set_value("p101_running", False)


async def _pump_restarts(plant: DemoPlant) -> None:
    plant.modbus.set_value("p101_running", True)


async def _network_drops(plant: DemoPlant) -> None:
    # MaintainX goes away for real: the emulator's listener closes, so every connection
    # is refused, as when the site's uplink is down. Work orders already made stay.
    await asyncio.to_thread(plant.maintainx.stop)


async def _modbus_drops(plant: DemoPlant) -> None:
    await plant.modbus.stop()


async def _modbus_back(plant: DemoPlant) -> None:
    await plant.modbus.start()


async def _winding_heats_up(plant: DemoPlant) -> None:
    await plant.opcua.ramp("Line1.M201.WindingTemp", 118.0, 2.0)


async def _network_back(plant: DemoPlant) -> None:
    # Listening again on the same port: the agent's retries get through.
    await asyncio.to_thread(plant.maintainx.start)


async def _things_calm_down(plant: DemoPlant) -> None:
    await plant.opcua.ramp("Line1.P101.BearingTemp", 62.0, 4.0)
    await plant.opcua.ramp("Line1.M201.WindingTemp", 70.0, 4.0)
    await plant.opcua.clear_fault("Line1.M201.Vibration")


SCRIPT: tuple[Step, ...] = (
    Step(
        1.0,
        "P-101 bearing starts heating up (62 → 97 °C); limit 85 °C, on_delay 5 s",
        _bearing_heats_up,
    ),
    Step(
        6.0,
        "M-201 vibration sensor fails (OPC UA BadSensorFailure); stale 10 s later",
        _sensor_goes_bad,
    ),
    Step(
        8.0,
        "P-101 trips (running → off): its downtime starts, OFFLINE UNPLANNED at MaintainX; "
        "its run hours stop counting",
        _pump_trips,
    ),
    Step(11.0, "P-101 runs again: ONLINE at MaintainX", _pump_restarts),
    Step(13.0, "Network to MaintainX drops (its listener stops)", _network_drops),
    Step(
        14.0,
        "M-201 winding overheats (→ 118 °C, limit 110 °C) during the outage: "
        "its alert waits until MaintainX is back",
        _winding_heats_up,
    ),
    Step(17.0, "PLC connection drops (Modbus server gone)", _modbus_drops),
    Step(20.0, "PLC is back", _modbus_back),
    Step(27.0, "Network to MaintainX is back: the buffered work order goes out", _network_back),
    Step(31.0, "Temperatures fall back, the sensor recovers", _things_calm_down),
)

DEFAULT_DURATION_S = 40.0


def describe(step: Step) -> dict[str, Any]:
    return {"at_s": round(step.at_s, 1), "step": step.says}
