"""End to end, MQTT mode: Modbus plant → `edge-agent run` → mosquitto → `edge-agent hub`
→ MaintainX emulator. A threshold crossing makes exactly one work order with the right
asset, priority and title. Every peer is real; the agent and the hub are processes."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import Broker
from tests.service.conftest import (
    AgentProcess,
    BackgroundLoop,
    mqtt_forwarding,
    site_document,
    wait_until,
    work_orders,
)


def test_mqtt_mode_end_to_end(
    make_agent: Any,
    plant: Any,
    emulator: Any,
    mosquitto: Broker,
    hub: subprocess.Popen[bytes],
    background: BackgroundLoop,
    health_port: int,
    tmp_path: Path,
) -> None:
    document = site_document(
        modbus_port=plant.port,
        health_port=health_port,
        storage=tmp_path / "state",
        forwarding=mqtt_forwarding(mosquitto),
    )
    agent: AgentProcess = make_agent(document)
    before = {wo["id"] for wo in work_orders(emulator)}
    background.run(lambda: plant.set_value("m201_current", 35.0))
    agent.start()
    try:
        agent.wait_ready()
        background.run(lambda: plant.set_value("m201_current", 70.0))

        def created() -> list[dict[str, Any]]:
            assert hub.poll() is None, (tmp_path / "hub.log").read_text()[-4000:]
            return [
                wo
                for wo in work_orders(emulator)
                if wo["id"] not in before and wo.get("assetId") == 1002
            ]

        orders = wait_until(created, 30, "the work order through MQTT and the hub")
        assert len(orders) == 1
        assert orders[0]["title"] == "Conveyor motor M-201: current 70.0 A"
        assert orders[0]["priority"] == "HIGH"
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            assert len(created()) == 1
            time.sleep(0.1)
        assert agent.metric("edge_agent_outbox_depth") == 0
        assert agent.stop() == 0
    finally:
        background.run(lambda: plant.set_value("m201_current", 35.0))
