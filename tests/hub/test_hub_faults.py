"""Bad input is rejected and counted while the hub keeps serving; one site's refused key
stops that site only, visibly in /readyz and /metrics, and its alerts wait, parked."""

from __future__ import annotations

import asyncio
import json
import random
import urllib.request
from pathlib import Path

from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker
from tests.hub.conftest import KEY_A, Site, async_wait_until, hub_dict, make_alert, start_hub


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _ours(mx: Emulator, ids: set[str]) -> list[dict]:
    return [wo for wo in mx.work_orders if (wo.get("externalData") or {}).get("alert_id") in ids]


async def test_bad_messages_are_rejected_counted_and_answered(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list
) -> None:
    hub = await start_hub(
        hub_dict(mosquitto, emulator.url, tmp_path / "s", max_message="2KB"), tmp_path
    )
    running_hubs.append(hub)
    site = Site(mosquitto)
    site.subscribe("edge/v1/+/results")
    base = random.randrange(1 << 40)
    wrong_schema = make_alert("site-a", base + 1, schema="edge-agent/alert@9")
    oversized = make_alert("site-a", base + 2)
    oversized["work_order"]["description"] = "x" * 5000
    missing = make_alert("site-a", base + 3)
    del missing["work_order"]
    site.publish("edge/v1/site-a/alerts", b"{not json")
    site.publish("edge/v1/site-a/alerts", wrong_schema)
    site.publish("edge/v1/site-a/alerts", oversized)
    site.publish("edge/v1/site-a/alerts", missing)
    site.publish("edge/v1/site-a/alerts", b"[1, 2]")
    site.publish("edge/v1/plant-z/alerts", make_alert("plant-z", base + 4))
    good = make_alert("site-a", base + 5)
    site.publish("edge/v1/site-a/alerts", good)

    await async_wait_until(lambda: len(_ours(emulator, {good["alert_id"]})) == 1, 20, "good one")
    await async_wait_until(lambda: len(site.on("site-a/results")) >= 6, 10, "answers")
    counts = hub.sites["site-a"].counters.rejected
    assert counts == {
        "not_json": 1,
        "wrong_schema": 1,
        "too_large": 1,
        "invalid_fields": 1,
        "not_an_object": 1,
    }
    assert sum(hub.consumer.stats.siteless_rejections.values()) == 1
    rejected = [r for r in site.on("site-a/results") if r["status"] == "rejected"]
    assert sorted(r["reason"] for r in rejected) == sorted(counts)
    # An unconfigured site is answered on its own topic too, and nothing is created for it.
    await async_wait_until(lambda: site.on("plant-z/results"), 10, "unknown site's answer")
    (answer,) = site.on("plant-z/results")
    assert answer["status"] == "rejected" and answer["reason"] == "unknown_site"
    assert not _ours(emulator, {m["alert_id"] for m in (wrong_schema, oversized, missing)})
    status, text = await asyncio.to_thread(_get, hub.health_port, "/metrics")
    assert status == 200
    assert 'edge_agent_hub_alerts_rejected_total{reason="too_large",site="site-a"} 1.0' in text
    assert 'edge_agent_hub_alerts_rejected_total{reason="unknown_site",site=""} 1.0' in text
    site.close()


async def test_a_refused_key_stops_only_its_site(
    mosquitto: Broker, tmp_path: Path, running_hubs: list
) -> None:
    # An emulator of its own: this test revokes a key.
    with Emulator(
        keys={KEY_A: [101], "key-site-b": [202]}, rate_limit=1_000_000, rate_limiting=False
    ) as mx:
        hub = await start_hub(
            hub_dict(mosquitto, mx.url, tmp_path / "s", retry_interval="200ms"), tmp_path
        )
        running_hubs.append(hub)
        site = Site(mosquitto)
        site.subscribe("edge/v1/+/results")
        site.publish("edge/v1/site-a/status", b"online", retain=True)
        mx.revoke_key(KEY_A)
        base = random.randrange(1 << 40)
        a_alerts = [make_alert("site-a", base + i) for i in range(3)]
        b_alerts = [make_alert("site-b", base + 10 + i) for i in range(3)]
        for message in a_alerts:
            site.publish("edge/v1/site-a/alerts", message)
        for message in b_alerts:
            site.publish("edge/v1/site-b/alerts", message)
        b_ids = {m["alert_id"] for m in b_alerts}
        a_ids = {m["alert_id"] for m in a_alerts}
        await async_wait_until(lambda: len(_ours(mx, b_ids)) == 3, 20, "site-b served")
        await async_wait_until(lambda: hub.sites["site-a"].credentials_rejected, 10, "a refused")
        await async_wait_until(
            lambda: len([r for r in site.on("site-a/results") if r["status"] == "parked"]) == 3,
            10,
            "site-a's alerts parked",
        )
        assert not _ours(mx, a_ids)
        await hub.refresh()
        status, body = await asyncio.to_thread(_get, hub.health_port, "/readyz")
        assert status == 200
        ready = json.loads(body)
        assert ready["sites"]["site-a"]["credentials"] == "rejected"
        assert ready["sites"]["site-a"]["parked"] == 3
        assert ready["sites"]["site-a"]["presence"] == "online"
        assert ready["sites"]["site-b"]["credentials"] == "ok"
        _, metrics = await asyncio.to_thread(_get, hub.health_port, "/metrics")
        assert 'edge_agent_hub_site_credentials_rejected{site="site-a"} 1.0' in metrics
        assert 'edge_agent_hub_site_credentials_rejected{site="site-b"} 0.0' in metrics
        assert 'edge_agent_hub_site_online{site="site-a"} 1.0' in metrics
        assert ready["sites"]["site-a"]["last_seen_ns"] > 0
        seen = [m for m in metrics.splitlines() if m.startswith("edge_agent_hub_site_last_seen")]
        assert any('site="site-a"' in line and float(line.split()[-1]) > 0 for line in seen)
        # The key works again: the parked alerts are applied, once each.
        mx.set_key(KEY_A, [101])
        hub.sites["site-a"].blocked_until = 0.0  # do not wait the 60 s credential retry
        await async_wait_until(lambda: len(_ours(mx, a_ids)) == 3, 20, "site-a served")
        await hub.refresh()
        await async_wait_until(lambda: hub.pending_counts.get("site-a", 0) == 0, 5, "drained")
        assert len(_ours(mx, a_ids)) == 3
        # The site's last will (retained offline) is its presence from then on.
        site.publish("edge/v1/site-a/status", b"offline", retain=True)
        await async_wait_until(lambda: hub.sites["site-a"].presence.state == "offline", 10)
        _, body = await asyncio.to_thread(_get, hub.health_port, "/readyz")
        assert json.loads(body)["sites"]["site-a"]["presence"] == "offline"
        site.close()


async def test_an_exhausted_rate_limit_slows_only_its_site(
    mosquitto: Broker, tmp_path: Path, running_hubs: list
) -> None:
    # 5 requests per 2 s per key: site-a's 16 alerts need several windows, site-b's 2 do not.
    with Emulator(keys={KEY_A: [101], "key-site-b": [202]}, rate_limit=5, rate_window_s=2.0) as mx:
        data = hub_dict(mosquitto, mx.url, tmp_path / "s", retry_interval="200ms")
        data["maintainx"]["rate_limit"] = 600
        hub = await start_hub(data, tmp_path)
        running_hubs.append(hub)
        site = Site(mosquitto)
        base = random.randrange(1 << 40)
        a_alerts = [make_alert("site-a", base + i) for i in range(16)]
        b_alerts = [make_alert("site-b", base + 100 + i) for i in range(2)]
        for message in a_alerts:
            site.publish("edge/v1/site-a/alerts", message)
        await async_wait_until(lambda: len(_ours(mx, {a_alerts[0]["alert_id"]})) == 1, 10)
        for message in b_alerts:
            site.publish("edge/v1/site-b/alerts", message)
        a_ids = {m["alert_id"] for m in a_alerts}
        await async_wait_until(
            lambda: len(_ours(mx, {m["alert_id"] for m in b_alerts})) == 2, 10, "site-b served"
        )
        assert len(_ours(mx, a_ids)) < 16  # site-a is still waiting for its windows
        _, body = await asyncio.to_thread(_get, hub.health_port, "/readyz")
        rate = json.loads(body)["sites"]["site-a"]["rate_limit"]
        assert rate["limit"] == 5
        _, metrics = await asyncio.to_thread(_get, hub.health_port, "/metrics")
        assert 'edge_agent_hub_site_rate_limit{site="site-a"} 5.0' in metrics
        assert 'edge_agent_hub_site_rate_limit_remaining{site="site-a"}' in metrics
        await async_wait_until(lambda: len(_ours(mx, a_ids)) == 16, 30, "site-a served")
        await hub.refresh()
        await async_wait_until(lambda: not hub.pending_counts, 10, "nothing parked")
        assert len(_ours(mx, a_ids)) == 16
        site.close()
