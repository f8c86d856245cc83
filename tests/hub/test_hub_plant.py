"""Plant data through the hub (issue 14): the agent's plant-data outbox, its MQTT sink, a real
mosquitto, the hub and the MaintainX emulator.

Two sites each send run-hours readings of a meter with the same name and the asset status
changes of their pump: each site's meter and PM trigger are created once, under that site's
key (its organization), each reading reaches MaintainX once, the status changes in order,
and every item leaves the agent's outbox only once the hub confirmed it; through a hub
restart and a broker restart.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

from edge_agent.forwarders.mqtt import MqttForwarder
from edge_agent.forwarders.plant_mqtt import plant_mqtt_forwarder
from edge_agent.hub.app import Hub
from edge_agent.outbox import Outbox
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker
from tests.forwarders_mqtt.conftest import mqtt_config, running
from tests.hub.conftest import async_wait_until, hub_dict, start_hub
from tests.hub.plant_messages import reading, status

N = 60
"""Readings per site."""
METER = "p101-run-hours"


def sink(broker: Broker, site: str, outbox: Outbox, tmp_path: Path) -> MqttForwarder:
    config = mqtt_config(
        broker.port, "edge/v1", confirm="hub", result_timeout="1s", result_timeout_max="2s"
    )
    return plant_mqtt_forwarder(config, site, outbox, tmp_path, idle_poll_s=0.01)


def readings_of(mx: Emulator, meter_ids: set[int]) -> Counter[tuple[int, str]]:
    return Counter(
        (r["meterId"], r["readingDate"]) for r in mx.readings if r["meterId"] in meter_ids
    )


def meters_named(mx: Emulator, asset_id: int) -> list[dict[str, Any]]:
    return [m for m in mx.store.all_meters() if m["assetId"] == asset_id]


async def test_two_sites_readings_and_statuses_once_each_through_restarts(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path
) -> None:
    assets = {
        "site-a": emulator.add_asset("Feed pump A", organization_id=101),
        "site-b": emulator.add_asset("Feed pump B", organization_id=202),
    }
    start = time.time_ns() - 3600 * 1_000_000_000
    outboxes = {site: Outbox.open(tmp_path / f"plant-{site}", 50_000_000) for site in assets}
    expected_status: dict[str, list[str]] = {}
    for site, asset in assets.items():
        for n in range(N // 2):
            outboxes[site].put(reading(site, METER, n, time_ns=start, asset_mx=asset))
        changes = ["OFFLINE", "ONLINE", "OFFLINE", "ONLINE"]
        expected_status[site] = changes
        for i, change in enumerate(changes):
            at = start + (i + 1) * 600 * 1_000_000_000
            outboxes[site].put(status(site, change, at, asset_mx=asset))
    data = hub_dict(mosquitto, emulator.url, tmp_path / "hub-state")
    hub: Hub | None = await start_hub(data, tmp_path)
    try:
        async with (
            running(sink(mosquitto, "site-a", outboxes["site-a"], tmp_path)),
            running(sink(mosquitto, "site-b", outboxes["site-b"], tmp_path)),
        ):
            await async_wait_until(
                lambda: all(len(meters_named(emulator, a)) == 1 for a in assets.values()),
                30,
                "a meter per site",
            )
            # The hub restarts while readings flow.
            assert hub is not None
            await hub.close()
            hub = None
            for site, asset in assets.items():
                for n in range(N // 2, N):
                    outboxes[site].put(reading(site, METER, n, time_ns=start, asset_mx=asset))
            hub = await start_hub(data, tmp_path)
            await asyncio.sleep(0.5)
            # Then the broker restarts.
            mosquitto.stop()
            await asyncio.sleep(0.3)
            mosquitto.start()
            await async_wait_until(
                lambda: all(
                    o.stats().depth == 0 and o.awaiting_count() == 0 for o in outboxes.values()
                ),
                90,
                "every item confirmed by the hub",
            )
    finally:
        if hub is not None:
            await hub.close()
        for outbox in outboxes.values():
            outbox.close()

    for site, asset in assets.items():
        meters = meters_named(emulator, asset)
        assert len(meters) == 1, meters  # created once per (site, meter), under its key
        meter_id = meters[0]["id"]
        counted = readings_of(emulator, {meter_id})
        assert len(counted) == N and set(counted.values()) == {1}, counted  # once each
        triggers = [t for t in emulator.store.all_meter_triggers() if t["meterId"] == meter_id]
        assert [t["condition"] for t in triggers] == ["INCREMENTED_BY"]
        posted = emulator.store.all_asset_statuses().get(asset, [])
        assert [s["status"] for s in posted] == expected_status[site]  # in order, once each
    # No site's reading reached the other's meter.
    ids = {meters_named(emulator, a)[0]["id"] for a in assets.values()}
    assert len(ids) == 2
