"""The demo's scenario: what happens to the plant and the network, and when.

Times are seconds from the start (at the default pace). Within about 30 seconds a pump
bearing overheats and a work order appears, a sensor goes bad, the network to MaintainX
drops, a motor overheats while it is down (its work order waits in the outbox), and the
network comes back and the buffered work order arrives.
"""

from __future__ import annotations

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


async def _network_drops(plant: DemoPlant) -> None:
    # Every connection to MaintainX is cut before a byte is answered, as when the site's
    # uplink goes down.
    plant.maintainx.faults.drop_rate = 1.0


async def _modbus_drops(plant: DemoPlant) -> None:
    await plant.modbus.stop()


async def _modbus_back(plant: DemoPlant) -> None:
    await plant.modbus.start()


async def _winding_heats_up(plant: DemoPlant) -> None:
    await plant.opcua.ramp("Line1.M201.WindingTemp", 118.0, 3.0)


async def _network_back(plant: DemoPlant) -> None:
    plant.maintainx.faults.drop_rate = 0.0


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
    Step(6.0, "M-201 vibration sensor fails (OPC UA BadSensorFailure)", _sensor_goes_bad),
    Step(14.0, "Network to MaintainX drops", _network_drops),
    Step(
        15.0,
        "M-201 winding heats up (70 → 118 °C) while MaintainX is unreachable",
        _winding_heats_up,
    ),
    Step(17.0, "PLC connection drops (Modbus server gone)", _modbus_drops),
    Step(20.0, "PLC is back", _modbus_back),
    Step(26.0, "Network to MaintainX is back: the buffered work order goes out", _network_back),
    Step(31.0, "Temperatures fall back, the sensor recovers", _things_calm_down),
)

DEFAULT_DURATION_S = 40.0


def describe(step: Step) -> dict[str, Any]:
    return {"at_s": round(step.at_s, 1), "step": step.says}
