"""Garbage on ``{prefix}/{site}/workorders/{id}`` (issue 13): the agent's tracker hears it
through a real mosquitto and the real MQTT forwarder, refuses and counts it, and hands the
rule engine only the valid changes, each once (a retained message seen again at a
reconnect is no second change). Nothing crashes; the agent keeps running."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from edge_agent.config.models import SiteConfig
from tests.conftest import Broker
from tests.service.rule_agent import HEALTHY_RULE, fault_site_document, running_agent

SITE = "fault-plant"
TOPIC = f"edge/v1/{SITE}/workorders"


def _publish_all(broker: Broker, items: list[tuple[str, bytes]]) -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for topic, payload in items:
            info = client.publish(topic, payload, qos=1, retain=True)
            info.wait_for_publish(timeout=10)
            assert info.is_published()
    finally:
        client.loop_stop()
        client.disconnect()


def _status(work_order_id: Any, **fields: Any) -> bytes:
    body = {
        "schema": "edge-agent/workorder@1",
        "site": SITE,
        "work_order_id": work_order_id,
        "status": "IN_PROGRESS",
        "alert_id": "a-1",
        "rule": "healthy-high",
        "asset": "P-101",
        **fields,
    }
    return json.dumps(body).encode()


GARBAGE: list[tuple[str, bytes]] = [
    (f"{TOPIC}/1", b"\xff\xfe not json"),
    (f"{TOPIC}/2", b"[1, 2, 3]"),
    (f"{TOPIC}/3", b"{" * 5000),
    (f"{TOPIC}/4", _status(4, site="another-site")),
    (f"{TOPIC}/5", _status(2**70)),
    (f"{TOPIC}/6", _status(-6)),
    (f"{TOPIC}/7", _status(True)),
    (f"{TOPIC}/8", _status(8, status="EXPLODED")),
    (f"{TOPIC}/9", _status(9, rule="r" * 10_000)),
    (f"{TOPIC}/10", _status(10, rule=None)),
    (f"{TOPIC}/11", _status("11")),
    (f"{TOPIC}/12", b"x" * 200_000),
    (f"{TOPIC}/13", b"[" * 100_000),  # deeper than the JSON reader recurses
    (f"{TOPIC}/14", b'{"work_order_id": ' + b"9" * 5000 + b"}"),  # past int()'s digit limit
    (f"{TOPIC}/15", b""),
]


async def test_garbage_is_counted_and_only_valid_changes_reach_the_rules(
    mosquitto: Broker, tmp_path: Path
) -> None:
    document = fault_site_document(tmp_path / "state", [HEALTHY_RULE])
    document["forwarding"] = {
        "mode": "mqtt",
        "mqtt": {
            "host": mosquitto.host,
            "port": mosquitto.port,
            "confirm": "broker",
            "backoff": {"initial": "100ms", "max": "1s"},
        },
    }
    config = SiteConfig.model_validate(document)
    calls: list[tuple[str, int, str, bool]] = []
    async with running_agent(config, tmp_path / "state") as agent:
        engine = agent.engine
        assert engine is not None
        real = engine.work_order_status

        def spy(rule: str, work_order_id: int, status: str, now_ns: int, **kw: Any) -> Any:
            calls.append((rule, work_order_id, status, bool(kw.get("assigned"))))
            return real(rule, work_order_id, status, now_ns, **kw)

        engine.work_order_status = spy  # type: ignore[method-assign]
        tracker = agent.work_orders
        assert tracker is not None
        deadline = time.monotonic() + 20
        while not (agent.forwarder and agent.forwarder.status.connected):
            assert time.monotonic() < deadline, "the forwarder never connected"
            await asyncio.sleep(0.05)

        valid = [(f"{TOPIC}/77", _status(77, assigned=True))]
        await asyncio.to_thread(_publish_all, mosquitto, [*GARBAGE, *valid, *valid])
        while not calls or tracker.ignored < len(GARBAGE):
            assert time.monotonic() < deadline, (calls, tracker.ignored)
            await asyncio.sleep(0.05)
        # Once more after the agent's own reconnect: retained, seen again, no second change.
        mosquitto.stop()
        mosquitto.start()
        await asyncio.sleep(1.5)
        assert agent._rules_task is not None and not agent._rules_task.done()

    assert calls == [("healthy-high", 77, "IN_PROGRESS", True)]
    # Every garbage message refused and counted, once (the reconnect's copies are the
    # broker's retained ones again: counted again, still nothing handed over).
    assert tracker.ignored >= len(GARBAGE)
    assert tracker.snapshot()["healthy-high"].work_order_id == 77
