"""Alarm commands from the hub, through a real mosquitto, to a running agent (MQTT mode):
`edge-agent hub HUB.yaml alarms SITE ...` publishes on `edge/v1/{site}/commands` and prints
the answer from `.../command-results`; the agent applies each id once and never a command
published for another site."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.alerts import format_time_ns
from tests.conftest import REPO_ROOT, Broker
from tests.forwarders_mqtt.conftest import Subscriber
from tests.service.conftest import (
    AgentProcess,
    hub_document,
    mqtt_forwarding,
    site_document,
    wait_until,
)

SITE = "test-plant"


def hub_cli(hub_file: Path, *args: str, timeout: str = "20") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "hub", str(hub_file), "alarms", *args]
        + ["--timeout", timeout],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        check=False,
    )


def publish(broker: Broker, topic: str, payload: bytes) -> None:
    """One QoS 1 message, acknowledged by the broker before this returns."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def command(command_id: str, **fields: Any) -> bytes:
    body = {
        "schema": "edge-agent/command@1",
        "id": command_id,
        "action": "shelve",
        "rule": "m201-current-high",
        "by": "test",
        "reason": "testing",
        # A command on the topic says when it was given (a stale one is refused).
        "time": format_time_ns(time.time_ns()),
        **fields,
    }
    if body["action"] == "shelve":
        body.setdefault("for", "1h")
    return json.dumps(body).encode()


def test_hub_command_reaches_only_its_own_site_once(
    make_agent: Any,
    plant: Any,
    emulator: Any,
    mosquitto: Broker,
    hub: subprocess.Popen[bytes],
    health_port: int,
    tmp_path: Path,
) -> None:
    hub_file = tmp_path / "hub.yaml"  # the running hub's file (the hub fixture wrote it)
    document = site_document(
        modbus_port=plant.port,
        health_port=health_port,
        storage=tmp_path / "state",
        forwarding=mqtt_forwarding(mosquitto),
    )
    agent: AgentProcess = make_agent(document)
    answers = Subscriber(mosquitto.port, "edge/v1/+/command-results").start()
    agent.start()
    try:
        agent.wait_serving()
        wait_until(lambda: agent.metric("edge_agent_forwarder_connected") == 1, 30, "MQTT")
        # The agent's session is persistent: once subscribed, a command waits for it.
        first = hub_cli(
            hub_file, SITE, "shelve", "m201-current-high", "--for", "1h", "--reason", "pump",
            "--by", "hub-operator", "--id", "hub-cmd-1",
        )  # fmt: skip
        assert first.returncode == 0, first.stderr + agent.logs()[-3000:]
        again = hub_cli(hub_file, SITE, "shelve", "m201-current-high", "--for", "1h",
                        "--reason", "pump", "--id", "hub-cmd-1")  # fmt: skip
        assert again.returncode == 0 and "already applied" in again.stdout

        # Another site's topic, a command the agent would accept: never applied here.
        publish(mosquitto, "edge/v1/other-plant/commands", command("foreign-1"))
        # Garbage on our own topic: answered ok false, counted.
        publish(mosquitto, f"edge/v1/{SITE}/commands", b"\xff not json")
        query = {"schema": "edge-agent/command@1", "id": "query-1", "query": "alarms"}
        publish(mosquitto, f"edge/v1/{SITE}/commands", json.dumps(query).encode())
        publish(mosquitto, f"edge/v1/{SITE}/commands", command("own-2", action="unshelve"))

        def own_answered() -> bool:
            return any(a.get("id") == "own-2" for a in answers.payloads())

        wait_until(own_answered, 20, "the answer to own-2")
        payloads = answers.payloads()
        assert not [a for a in payloads if a.get("id") == "foreign-1"]
        assert [a["id"] for a in payloads if a["id"] == "hub-cmd-1"] == ["hub-cmd-1"] * 2
        assert [a for a in payloads if a["id"] is None and not a["ok"]]  # the garbage
        # The alarms view is for the gateway's own users (the socket), not the topic.
        [query_answer] = [a for a in payloads if a["id"] == "query-1"]
        assert query_answer["ok"] is False and "alarms" not in query_answer
        topics = {topic for topic, _, _ in answers.messages}
        assert topics == {f"edge/v1/{SITE}/command-results"}

        audit = [
            json.loads(line)
            for line in (tmp_path / "state" / "alarm-audit.jsonl").read_text().splitlines()
        ]
        assert [line["id"] for line in audit if line["id"] == "hub-cmd-1"] == ["hub-cmd-1"]
        assert not [line for line in audit if line["id"] == "foreign-1"]
        applied = [line for line in audit if line["id"] == "hub-cmd-1"][0]
        assert applied["via"] == "mqtt" and applied["by"] == "hub-operator"

        sent = [
            json.loads(line)
            for line in (tmp_path / "hub-state" / "commands-sent.jsonl").read_text().splitlines()
        ]
        answered = [r for r in sent if r.get("id") == "hub-cmd-1" and "answer" in r]
        assert len(answered) == 2 and answered[0]["answer"]["ok"] is True
        assert answered[1]["answer"]["repeat"] is True

        # The running hub recorded every answer it heard, the ones no CLI waited for too.
        def recorded() -> list[dict[str, Any]]:
            path = tmp_path / "hub-state" / "command-results.jsonl"
            lines = path.read_text().splitlines() if path.exists() else []
            return [json.loads(line) for line in lines]

        wait_until(lambda: any(r["id"] == "own-2" for r in recorded()), 20, "the hub's record")
        heard = recorded()
        assert [r.get("repeat", False) for r in heard if r["id"] == "hub-cmd-1"] == [False, True]
        assert {r["site"] for r in heard} == {SITE}
        assert hub.poll() is None
        own = [a for a in payloads if a["id"] == "own-2"]
        assert len(own) == 1 and own[0]["ok"] is True, own
        assert agent.metric("edge_agent_alarm_commands_total", via="mqtt", outcome="rejected") == 2
        assert agent.metric("edge_agent_alarm_commands_total", via="mqtt", outcome="repeated") == 1
        assert agent.alive()
        assert agent.stop() == 0
    finally:
        answers.stop()
        agent.kill()


def test_hub_alarms_without_an_answer_says_how_to_ask_again(
    mosquitto: Broker, emulator: Any, tmp_path: Path
) -> None:
    hub_file = tmp_path / "hub.yaml"
    hub_file.write_text(json.dumps(hub_document(tmp_path, mosquitto, emulator, webhooks=False)))
    silent = hub_cli(hub_file, SITE, "ack", "m201-current-high", "--id", "nobody-1", timeout="2")
    assert silent.returncode == 3
    assert "--id nobody-1" in silent.stderr
    unknown = hub_cli(hub_file, "no-such-site", "ack", "r")
    assert unknown.returncode == 2 and "no site" in unknown.stderr
    listing = hub_cli(hub_file, SITE, "list")
    assert listing.returncode == 2 and "on the gateway only" in listing.stderr
    for bad in ("nan", "1e400", "0"):  # a usage error, never a traceback or an endless wait
        absurd = hub_cli(hub_file, SITE, "ack", "m201-current-high", timeout=bad)
        assert absurd.returncode == 2 and "seconds in (0, 600]" in absurd.stderr
