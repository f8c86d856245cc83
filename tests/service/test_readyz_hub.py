"""/readyz, /metrics and `edge-agent outbox status` follow the hub's presence (MQTT,
``confirm: hub``): presence unknown while no hub status was ever seen (ready), unready with
the reason while every hub replica says offline (the agent holds its events), ready again
when one comes online. A real mosquitto, the agent as a real process; the hub's retained
announcements are published by the test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from edge_agent.cli import main
from tests.conftest import Broker
from tests.service.conftest import AgentProcess, mqtt_forwarding, site_document, wait_until


def announce(broker: Broker, state: str, replica: str = "hub-a") -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        body = {"state": state, "group": "g", "replica": replica, "time": "2026-12-04T00:00:00Z"}
        payload = json.dumps(body).encode() if state else b""
        info = client.publish(f"edge/v1/hub/status/{replica}", payload, qos=1, retain=True)
        info.wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def test_readyz_says_when_no_hub_is_online(
    make_agent: Any,
    plant: Any,
    mosquitto: Broker,
    health_port: int,
    tmp_path: Path,
    capsys: Any,
) -> None:
    document = site_document(
        modbus_port=plant.port,
        health_port=health_port,
        storage=tmp_path / "state",
        forwarding=mqtt_forwarding(mosquitto),
    )
    agent: AgentProcess = make_agent(document)
    agent.start()
    ready = agent.wait_ready()
    assert ready["forwarder"]["hub"] == "hub presence unknown"
    assert agent.metric("edge_agent_hub_presence", state="unknown") == 1.0

    announce(mosquitto, "offline")

    def unready() -> dict[str, Any] | None:
        status, body = agent.json("/readyz")
        return body if status == 503 else None

    body = wait_until(unready, 20, "/readyz to say 503")
    assert any("no hub is online" in reason for reason in body["reasons"]), body
    assert body["forwarder"]["hub_presence"] == "offline"
    assert agent.metric("edge_agent_outbox_held_for_hub") == 1.0
    assert agent.metric("edge_agent_hub_presence", state="offline") == 1.0
    assert main(["outbox", str(agent.site), "status", "--state-dir", str(agent.state_dir)]) == 0
    assert "offline for" in capsys.readouterr().out

    announce(mosquitto, "online")
    ready = agent.wait_ready(20)
    assert ready["forwarder"]["hub"] == "hub online"
    assert agent.metric("edge_agent_outbox_held_for_hub") == 0.0
    assert agent.stop() == 0
