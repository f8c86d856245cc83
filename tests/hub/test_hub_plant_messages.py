"""What the hub does with each plant data message it is given (issue 14): a bad one is
rejected, counted and answered (never a crash, the next one is served), a resent one is
answered from the store and posted once, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import edge_agent.hub.plant_consumer as plant_consumer
from edge_agent.hub.app import Hub
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker
from tests.hub.conftest import PG_DSN, Site, async_wait_until, hub_dict, start_hub
from tests.hub.plant_messages import reading, status, until_answered

RESULTS = "edge/v1/site-a/results/plant"


def answers(site: Site) -> dict[str, dict[str, Any]]:
    """Message id → its (last) result."""
    return {r["event_id"]: r for r in site.on("/results/plant") if r.get("event_id")}


def counters(hub: Hub, site: str = "site-a") -> Any:
    assert hub.plant_consumer is not None
    return hub.plant_consumer.stats.site(site)


async def test_bad_plant_messages_are_rejected_counted_and_the_next_is_served(
    mosquitto: Broker,
    emulator: Emulator,
    tmp_path: Path,
    running_hubs: list[Hub],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = await start_hub(hub_dict(mosquitto, emulator.url, tmp_path / "hub"), tmp_path)
    running_hubs.append(hub)
    asset = emulator.add_asset("Pump", organization_id=101)
    now = time.time_ns()
    site = Site(mosquitto)
    try:
        site.subscribe(RESULTS)
        warm = reading("site-a", "m1", 0, time_ns=now, asset_mx=asset)
        await until_answered(site, "edge/v1/site-a/meters", warm)  # subscriptions granted
        bad_value = reading("site-a", "m1", 1, time_ns=now, asset_mx=asset)
        bad_value["value"] = "lots"
        other_site = reading("site-b", "m1", 2, time_ns=now, asset_mx=asset)
        site.publish("edge/v1/site-a/meters", b"{not json")
        site.publish("edge/v1/site-a/meters", bad_value)
        site.publish("edge/v1/site-a/meters", other_site)  # site-b's message on site-a's topic
        site.publish("edge/v1/site-z/meters", reading("site-z", "m1", 3, time_ns=now, asset_mx=1))
        site.publish("edge/v1/site-a/assets", reading("site-a", "m1", 4, time_ns=now, asset_mx=1))

        # A poison message: its handling raises.
        def explode(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("boom")

        monkeypatch.setattr(plant_consumer, "post_asset_status", explode)
        poison = status("site-a", "OFFLINE", now, asset_mx=asset)
        site.publish("edge/v1/site-a/assets", poison)
        await async_wait_until(lambda: poison["id"] in answers(site), 15, "the poison answered")
        monkeypatch.undo()

        good = reading("site-a", "m1", 5, time_ns=now, asset_mx=asset)
        site.publish("edge/v1/site-a/meters", good)
        await async_wait_until(lambda: good["id"] in answers(site), 15, "the good one answered")
    finally:
        site.close()
    got = answers(site)
    assert got[good["id"]]["status"] == "ok"
    assert got[bad_value["id"]]["status"] == "rejected"
    assert got[bad_value["id"]]["reason"] == "invalid"
    assert "value" in got[bad_value["id"]]["detail"]
    assert got[other_site["id"]]["reason"] == "wrong_site"
    assert got[poison["id"]]["reason"] == "poison"
    rejected = counters(hub).rejected
    assert rejected == {"not_json": 1, "invalid": 2, "wrong_site": 1, "poison": 1}
    assert hub.plant_consumer is not None
    assert hub.plant_consumer.stats.siteless_rejections == {"unknown_site": 1}
    assert hub.plant_consumer.stats.poison == 1
    meters = _meter_ids(emulator, asset)
    assert [r["value"] for r in emulator.readings if r["meterId"] in meters] == [0.0, 5.0]
    assert hub.failure is None


def _meter_ids(mx: Emulator, asset: int) -> set[int]:
    return {m["id"] for m in mx.store.all_meters() if m["assetId"] == asset}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_resent_readings_are_posted_once_across_a_restart(
    backend: str,
    mosquitto: Broker,
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    dedup: dict[str, Any] = {"backend": "sqlite"}
    if backend == "postgres":
        schema = request.getfixturevalue("pg_schema")
        monkeypatch.setenv("HUB_TEST_PG_DSN", PG_DSN)
        dedup = {
            "backend": "postgres",
            "dsn": "${HUB_TEST_PG_DSN}",
            "table_prefix": f"{schema}.hub_",
        }
    data = hub_dict(mosquitto, emulator.url, tmp_path / "hub", dedup=dedup)
    asset = emulator.add_asset(f"Pump {backend}", organization_id=101)
    now = time.time_ns()
    messages = [
        reading("site-a", f"m-{backend}", n, time_ns=now, asset_mx=asset) for n in range(20)
    ]
    site = Site(mosquitto)
    site.subscribe(RESULTS)
    try:
        for _ in range(2):  # a hub, then the same hub restarted on its store
            hub = await start_hub(data, tmp_path)
            try:
                await until_answered(site, "edge/v1/site-a/meters", messages[0])
                answered = len(site.on("/results/plant"))
                for _copy in range(2):  # each message twice: the agent resends
                    site.publish_many(
                        [("edge/v1/site-a/meters", json.dumps(m).encode()) for m in messages]
                    )
                await async_wait_until(
                    lambda: (
                        counters(hub).readings_received >= 40
                        and len(site.on("/results/plant")) >= answered + 20
                    ),
                    30,
                    "every copy handled, each message answered",
                )
            finally:
                await hub.close()
    finally:
        site.close()
    meters = _meter_ids(emulator, asset)
    assert len(meters) == 1
    posted = sorted(r["value"] for r in emulator.readings if r["meterId"] in meters)
    assert posted == [float(n) for n in range(20)]  # once each
    assert all(r["status"] == "ok" for r in answers(site).values())
    triggers = [t for t in emulator.store.all_meter_triggers() if t["meterId"] in meters]
    assert len(triggers) == 1


async def test_readings_older_than_three_days_are_reduced_not_refused(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list[Hub]
) -> None:
    """After a 4-day outage between a site and the hub: its run hours reach MaintainX
    re-dated inside the window (no 400, nothing dead-lettered at the agent), its old gauge
    values are answered and not sent."""
    from edge_agent.wire.plant import MeterSpec

    hub = await start_hub(hub_dict(mosquitto, emulator.url, tmp_path / "hub"), tmp_path)
    running_hubs.append(hub)
    asset = emulator.add_asset("Old pump", organization_id=101)
    four_days_ago = time.time_ns() - 4 * 86_400 * 1_000_000_000
    run_hours = [
        reading("site-a", "old-rh", n, time_ns=four_days_ago, asset_mx=asset) for n in range(3)
    ]
    gauge = reading(
        "site-a", "old-temp", 0, time_ns=four_days_ago, asset_mx=asset,
        spec=MeterSpec("Old temp", "degC", "gauge"),
    )  # fmt: skip
    gauge["kind"] = "gauge"
    site = Site(mosquitto)
    site.subscribe(RESULTS)
    try:
        for message in [*run_hours, gauge]:
            await until_answered(site, "edge/v1/site-a/meters", message)
    finally:
        site.close()
    got = answers(site)
    assert {got[m["id"]]["status"] for m in [*run_hours, gauge]} == {"ok"}
    assert got[gauge["id"]]["action"] == "stale_gauge"
    meters = {m["id"]: m["name"] for m in emulator.store.all_meters() if m["assetId"] == asset}
    posted = [r for r in emulator.readings if r["meterId"] in meters]
    assert [meters[r["meterId"]] for r in posted] == ["P-101 run hours"] * 3
    assert [r["value"] for r in posted] == [0.0, 1.0, 2.0]
    assert counters(hub).not_sent == {"stale_gauge": 1}


async def test_a_key_refused_for_plant_data_holds_plant_data_not_the_sites_alerts(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list[Hub]
) -> None:
    """MaintainX answering 401 on a meters request (a key without the meters scope): the
    site's plant data waits, counted; the site itself stays usable for its alerts (before,
    the site was blocked for a minute at each refused reading, its alerts parked)."""
    hub = await start_hub(hub_dict(mosquitto, emulator.url, tmp_path / "hub"), tmp_path)
    running_hubs.append(hub)
    asset = emulator.add_asset("Pump 401", organization_id=101)
    now = time.time_ns()
    site = Site(mosquitto)
    try:
        site.subscribe(RESULTS)
        warm = reading("site-a", "k1", 0, time_ns=now, asset_mx=asset)
        await until_answered(site, "edge/v1/site-a/meters", warm)
        emulator.faults.force_status(401, {"error": "Unauthorized"}, count=1)
        refused = reading("site-a", "k2", 1, time_ns=now, asset_mx=asset)  # a new meter
        site.publish("edge/v1/site-a/meters", refused)
        await async_wait_until(
            lambda: counters(hub).key_refused is not None, 15, "the key refused for plant data"
        )
        deferred = counters(hub).deferred
        later = reading("site-a", "k1", 2, time_ns=now, asset_mx=asset)
        site.publish("edge/v1/site-a/meters", later)
        await async_wait_until(lambda: counters(hub).deferred > deferred, 15, "held")
    finally:
        site.close()
    runtime = hub.sites["site-a"]
    assert not runtime.credentials_rejected and runtime.usable()
    assert refused["id"] not in answers(site) and later["id"] not in answers(site)
    assert hub.failure is None
