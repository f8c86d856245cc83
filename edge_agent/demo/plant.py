"""The demo's stand-ins on free loopback ports, and the site file rewritten to reach them.

``DemoPlant`` starts the Modbus plant, the OPC UA plant and the MaintainX emulator;
``write_demo_site`` copies ``configs/demo/site.yaml`` (comments kept) with their ports, a
free health port and a temporary state directory.
"""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEMO_SITE_NAME = "site.yaml"


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_site_source() -> Path:
    """``configs/demo/site.yaml`` in a source checkout, else the copy shipped in the package
    (a test keeps the two identical)."""
    checkout = Path(__file__).resolve().parents[2] / "configs" / "demo" / DEMO_SITE_NAME
    if checkout.is_file():
        return checkout
    return Path(__file__).resolve().parent / DEMO_SITE_NAME


@dataclass
class DemoPorts:
    modbus: int
    opcua_endpoint: str
    maintainx_url: str
    health: int


def write_demo_site(
    target: Path,
    ports: DemoPorts,
    state_dir: Path,
    *,
    mqtt: dict[str, Any] | None = None,
) -> Path:
    """Write the demo site with ``ports`` to ``target``; returns ``target``.

    With ``mqtt``, forwarding goes to that broker instead of straight to MaintainX.
    """
    from ruamel.yaml import YAML

    round_trip = YAML()  # keeps the original's comments in the copy; safe: no tags run
    document = round_trip.load(demo_site_source().read_text(encoding="utf-8"))
    document["connections"]["plc1"]["port"] = ports.modbus
    document["connections"]["ua1"]["endpoint"] = ports.opcua_endpoint
    if mqtt is not None:
        document["forwarding"] = {"mode": "mqtt", "mqtt": mqtt}
    else:
        maintainx = document["forwarding"]["maintainx"]
        maintainx["base_url"] = ports.maintainx_url
        # The demo shows a network outage: retry quickly once MaintainX is back.
        maintainx["backoff"] = {"initial": "200ms", "max": "2s"}
        maintainx["timeout"] = "2s"
    document["storage"]["path"] = str(state_dir)
    document["health"]["listen"] = f"127.0.0.1:{ports.health}"
    with target.open("w", encoding="utf-8") as out:
        round_trip.dump(document, out)
    return target


DEMO_ASSETS = {1001: "Cooling-water pump P-101", 1002: "Conveyor motor M-201"}


def seed_demo_assets(emulator: Any) -> None:
    """Create the demo's assets in a fresh emulator, with the ids the site file uses."""
    for expected_id, name in DEMO_ASSETS.items():
        got = emulator.add_asset(name)
        if got != expected_id:
            raise RuntimeError(f"the emulator gave asset {name!r} id {got}, not {expected_id}")


@dataclass
class DemoPlant:
    """The three simulators, started and stopped together."""

    api_key: str = field(default_factory=lambda: "demo-" + secrets.token_hex(12))
    modbus: Any = None
    opcua: Any = None
    maintainx: Any = None

    async def start(self) -> None:
        from edge_agent.simulators.maintainx import Emulator
        from edge_agent.simulators.modbus import ModbusPlant
        from edge_agent.simulators.opcua import OpcUaSimulator

        self.maintainx = Emulator(keys={self.api_key: 1}).start()
        seed_demo_assets(self.maintainx)
        self.modbus = ModbusPlant(port=0)
        await self.modbus.start()
        self.opcua = OpcUaSimulator(port=free_port())
        await self.opcua.start()

    def ports(self) -> DemoPorts:
        return DemoPorts(
            modbus=int(self.modbus.port),
            opcua_endpoint=str(self.opcua.endpoint),
            maintainx_url=str(self.maintainx.url),
            health=free_port(),
        )

    async def close(self) -> None:
        if self.opcua is not None:
            await self.opcua.close()
        if self.modbus is not None:
            await self.modbus.close()
        if self.maintainx is not None:
            self.maintainx.stop()
