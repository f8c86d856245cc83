"""The hub's one more try after an unexpected error, seen from the agent (real outbox, MQTT
forwarder confirming by the hub's results, mosquitto, the hub and the MaintainX emulator).
A surprise once ends as exactly one work order, confirmed; a surprise every time ends in
the agent's dead letters (the site still holds the alarm), never as silence."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import edge_agent.hub.consumer as consumer_module
from edge_agent.forwarders.mqtt import MqttForwarder
from edge_agent.hub.app import Hub
from edge_agent.outbox import Outbox
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker
from tests.forwarders_mqtt.conftest import mqtt_config, running
from tests.hub.conftest import KEY_A, KEY_B, async_wait_until, hub_dict, make_alert, start_hub

SITE = "site-a"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(
        keys={KEY_A: [101], KEY_B: [202]}, rate_limit=1_000_000, rate_limiting=False
    ) as mx:
        yield mx


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_TEST_KEY_A", KEY_A)
    monkeypatch.setenv("HUB_TEST_KEY_B", KEY_B)


def _orders(mx: Emulator, alert_id: str) -> int:
    return sum(
        1 for wo in mx.work_orders if (wo.get("externalData") or {}).get("alert_id") == alert_id
    )


async def test_the_agent_gets_the_final_answer_of_the_one_more_try(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = random.randrange(1 << 40)
    once = make_alert(SITE, base)
    always = make_alert(SITE, base + 1)
    once["work_order"]["title"] = f"ONCE {base}"
    always["work_order"]["title"] = f"ALWAYS {base}"
    surprised: list[str] = []
    real_apply = consumer_module.apply_alert

    async def apply_alert(client: Any, ledger: Any, message: Any, **kwargs: Any) -> Any:
        title = message["work_order"]["title"]
        if title.startswith("ALWAYS") or (title.startswith("ONCE") and not surprised):
            surprised.append(title)
            raise AttributeError("'NoneType' object has no attribute 'send' (injected)")
        return await real_apply(client, ledger, message, **kwargs)

    monkeypatch.setattr(consumer_module, "apply_alert", apply_alert)
    data = hub_dict(mosquitto, emulator.url, tmp_path / "hub", retry_interval="200ms")
    hub: Hub = await start_hub(data, tmp_path)
    outbox = Outbox.open(tmp_path / "outbox", 50_000_000)
    try:
        outbox.put_many([once, always])
        # The agent's wait for a result (30 s) is far longer than the hub's retry interval.
        config = mqtt_config(
            mosquitto.port, "edge/v1", confirm="hub", result_timeout="30s", result_timeout_max="60s"
        )
        forwarder = MqttForwarder(config, SITE, outbox, tmp_path, idle_poll_s=0.01)
        async with running(forwarder):
            await async_wait_until(
                lambda: outbox.awaiting_count() == 0 and outbox.stats().depth == 0,
                30,
                "both alarms answered",
            )
            # The hub's work ends as well: the one more try of each.
            await async_wait_until(
                lambda: (
                    _orders(emulator, once["alert_id"]) == 1
                    and hub.consumer is not None
                    and hub.consumer.stats.poison == 1
                ),
                30,
                "the hub's second tries",
            )
            await async_wait_until(lambda: len(outbox.dead_letters()) == 1, 10, "a dead letter")
        assert _orders(emulator, once["alert_id"]) == 1
        assert _orders(emulator, always["alert_id"]) == 0
        [dead] = outbox.dead_letters()
        assert dead.payload["event_id"] == always["event_id"]  # the site keeps the alarm
        assert "poison" in dead.reason
        assert surprised.count(always["work_order"]["title"]) == 2  # two tries, no more
    finally:
        await hub.close()
        outbox.close()
