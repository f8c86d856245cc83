"""The plant-data MQTT sink (issue 14) against a real mosquitto, without a hub
(``confirm: broker``): each item, as stored, on the topic of its schema; a second connection
of the site that announces nothing (the site's status stays the alert forwarder's); an item
no hub could confirm is dead-lettered with ``confirm: hub``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edge_agent.forwarders.mqtt import MqttForwarder
from edge_agent.forwarders.plant_mqtt import plant_mqtt_forwarder
from edge_agent.outbox import Outbox
from tests.hub.plant_messages import reading, status

from .conftest import TunedBroker, async_wait_until, mqtt_config, running


async def test_readings_on_meters_statuses_on_assets_and_no_birth(
    broker: TunedBroker, names: tuple[str, str], subscribe: Any, tmp_path: Path
) -> None:
    prefix, site = names
    sub = subscribe(broker.port, f"{prefix}/{site}/#")
    outbox = Outbox.open(tmp_path / "plant", 50_000_000)
    now = time.time_ns()
    readings = [reading(site, "rh", n, time_ns=now, asset_mx=7) for n in range(20)]
    statuses = [status(site, s, now + i, asset_mx=7) for i, s in enumerate(["OFFLINE", "ONLINE"])]
    outbox.put_many(readings + statuses)
    sink = plant_mqtt_forwarder(mqtt_config(broker.port, prefix), site, outbox, tmp_path)
    alerts = MqttForwarder(
        mqtt_config(broker.port, prefix),
        site,
        Outbox.open(tmp_path / "alerts", 50_000_000),
        tmp_path,
    )
    try:
        assert sink.client_id == alerts.client_id + "-plant"  # never takes its session over
        async with running(sink):
            await async_wait_until(lambda: outbox.stats().depth == 0, what="drained")
            await async_wait_until(
                lambda: len(sub.payloads(f"{prefix}/{site}/meters")) == 20, what="20 readings"
            )
        assert sub.payloads(f"{prefix}/{site}/meters") == readings  # as stored, in order
        assert sub.payloads(f"{prefix}/{site}/assets") == statuses
        assert sub.payloads(f"{prefix}/{site}/status") == []  # no birth, no will, no offline
    finally:
        outbox.close()
        alerts.outbox.close()


async def test_an_item_no_hub_could_confirm_is_dead_lettered(
    broker: TunedBroker, names: tuple[str, str], tmp_path: Path
) -> None:
    prefix, site = names
    outbox = Outbox.open(tmp_path / "plant", 50_000_000)
    outbox.put({"schema": "edge-agent/meter-reading@1", "site": site})  # no id
    config = mqtt_config(broker.port, prefix, confirm="hub")
    sink = plant_mqtt_forwarder(config, site, outbox, tmp_path, idle_poll_s=0.01)
    try:
        async with running(sink):
            await async_wait_until(lambda: outbox.stats().dead == 1, what="dead-lettered")
        assert sink.results_topic == f"{prefix}/{site}/results/plant"
    finally:
        outbox.close()
