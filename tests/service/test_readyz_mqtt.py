"""/readyz follows the MQTT broker: unready (503, with the reason) while it is down, ready
again after. A real mosquitto (tests/conftest.py) and the agent as a real process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import Broker
from tests.service.conftest import AgentProcess, mqtt_forwarding, site_document, wait_until


def test_readyz_turns_unready_when_the_broker_is_down(
    make_agent: Any, plant: Any, mosquitto: Broker, health_port: int, tmp_path: Path
) -> None:
    document = site_document(
        modbus_port=plant.port,
        health_port=health_port,
        storage=tmp_path / "state",
        forwarding=mqtt_forwarding(
            mosquitto, keepalive="2s", backoff={"initial": "100ms", "max": "500ms"}
        ),
    )
    agent: AgentProcess = make_agent(document)
    agent.start()
    ready = agent.wait_ready()
    assert ready["forwarder"]["connected"] is True
    assert agent.metric("edge_agent_forwarder_connected") == 1.0

    mosquitto.stop()

    def unready() -> dict[str, Any] | None:
        status, body = agent.json("/readyz")
        return body if status == 503 else None

    body = wait_until(unready, 20, "/readyz to say 503")
    assert body["ready"] is False
    assert any("forwarder is not connected" in reason for reason in body["reasons"])
    assert agent.json("/healthz")[0] == 200  # the process itself is fine
    assert agent.metric("edge_agent_forwarder_connected") == 0.0

    mosquitto.start()
    agent.wait_ready(20)
    assert agent.stop() == 0
