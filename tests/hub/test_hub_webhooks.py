"""Webhooks close the loop: a signed status change becomes a retained work-order message
for the site; a wrong signature or a stale timestamp gets 401; a replay changes nothing."""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.error
import urllib.request
from pathlib import Path

from edge_agent.hub.config import HubConfig
from edge_agent.hub.subscriptions import register_webhooks
from edge_agent.hub.webhooks import SIGNATURE_HEADER, sign
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker
from tests.hub.conftest import Site, async_wait_until, hub_dict, make_alert, start_hub


def _post(port: int, path: str, body: bytes, signature: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def test_status_changes_reach_the_site_and_bad_signatures_do_not(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list
) -> None:
    data = hub_dict(mosquitto, emulator.url, tmp_path / "s", webhooks=True)
    port = int(data["webhooks"]["listen"].rsplit(":", 1)[1])
    data["webhooks"]["public_url"] = f"http://127.0.0.1:{port}/maintainx/webhooks"
    made = await register_webhooks(HubConfig.model_validate(data), tmp_path)
    assert [(row.site, row.state) for row in made] == [("site-a", "created"), ("site-b", "created")]
    hub = await start_hub(data, tmp_path)
    running_hubs.append(hub)
    site = Site(mosquitto)
    site.subscribe("edge/v1/site-a/#")
    alert = make_alert("site-a", random.randrange(1 << 40))
    site.publish("edge/v1/site-a/alerts", alert)
    await async_wait_until(lambda: any(r["status"] == "ok" for r in site.results()), 20, "result")
    work_order_id = site.results()[0]["work_order_id"]

    # A technician finishes the work in MaintainX: the emulator sends the signed webhook.
    await asyncio.to_thread(emulator.change_status, work_order_id, "DONE")
    topic_suffix = f"site-a/workorders/{work_order_id}"
    await async_wait_until(lambda: site.on(topic_suffix), 20, "work order message")
    message = site.on(topic_suffix)[0]
    assert message["status"] == "DONE" and message["alert_id"] == alert["alert_id"]
    assert message["rule"] == alert["rule"]
    assert hub.webhook_handler.outcomes["applied"] == 1
    await hub.refresh()
    row = next(r for r in hub.kpi_rows if r.site == "site-a" and r.asset == alert["asset"]["id"])
    assert row.work_orders_done >= 1 and row.mttr_s is not None
    # The same KPIs in /metrics, per site and asset.
    metrics = await asyncio.to_thread(_get_text, f"http://127.0.0.1:{hub.health_port}/metrics")
    labels = f'{{asset="{alert["asset"]["id"]}",site="site-a"}}'
    for name in ("alerts_raised", "work_orders_created", "open_backlog", "mttr_seconds"):
        assert f"edge_agent_hub_kpi_{name}{labels}" in metrics, name

    # Our own deliveries, signed with the configured secret.
    body = json.dumps(
        {
            "workOrderId": work_order_id,
            "orgId": 101,
            "oldStatus": "DONE",
            "newStatus": "OPEN",
            "occurredAt": "2099-01-01T00:00:00Z",
        }
    ).encode()
    path = "/maintainx/webhooks/site-a"
    now = int(time.time())
    post = asyncio.to_thread
    assert await post(_post, port, path, body, sign("wrong-secret", now, body)) == 401
    assert await post(_post, port, path, body, sign("whsec-test", now - 3600, body)) == 401
    assert await post(_post, port, path, body, None) == 401
    assert await post(_post, port, path, body + b" ", sign("whsec-test", now, body)) == 401
    good = sign("whsec-test", now, body)
    assert await post(_post, port, path, body, good) == 200
    await async_wait_until(
        lambda: [m["status"] for m in site.on(topic_suffix)] == ["DONE", "OPEN"], 10, "reopened"
    )
    assert await post(_post, port, path, body, good) == 200  # the replay
    assert hub.webhook_handler.outcomes["replay"] == 1
    assert hub.webhook_handler.outcomes["unauthorized"] == 4
    await asyncio.sleep(0.3)
    assert [m["status"] for m in site.on(topic_suffix)] == ["DONE", "OPEN"]
    assert await post(_post, port, path, b"x" * 70_000, good) == 413
    # The work-order message is retained: a site that connects later still learns it.
    late = Site(mosquitto)
    late.subscribe(f"edge/v1/{topic_suffix}")
    await async_wait_until(lambda: late.on(topic_suffix), 10, "retained message")
    assert late.received[0][2] is True and late.on(topic_suffix)[0]["status"] == "OPEN"
    site.close()
    late.close()


async def test_bare_path_finds_a_site_whose_organization_a_reload_changed(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list
) -> None:
    """Two sites in one organization after a reload that corrected one site's
    ``organization_id``: a signed webhook on ``/maintainx/webhooks`` (no site) is applied
    for the site whose alert made the work order (it was answered ``not_ours``: the handler
    kept the organizations the hub started with)."""
    from ruamel.yaml import YAML

    from edge_agent.hub.reload import HubReloader

    data = hub_dict(mosquitto, emulator.url, tmp_path / "s", webhooks=True)
    port = int(data["webhooks"]["listen"].rsplit(":", 1)[1])
    data["sites"]["site-c"] = {"api_key": "${HUB_TEST_KEY_B}", "organization_id": 303}  # typo
    hub_file = tmp_path / "hub.yaml"
    hub_file.write_text(json.dumps(data))
    hub = await start_hub(data, tmp_path)
    running_hubs.append(hub)
    hub.reloader = HubReloader(hub, hub_file)
    data["sites"]["site-c"]["organization_id"] = 202  # the organization of site-b's key too
    with hub_file.open("w") as handle:
        YAML().dump(data, handle)
    assert await hub.reloader.reload("test")
    await hub.key_checks.wait()
    assert hub.key_checks.state("site-c") == "ok"

    site = Site(mosquitto)
    site.subscribe("edge/v1/site-c/#")
    alert = make_alert("site-c", random.randrange(1 << 40))
    site.publish("edge/v1/site-c/alerts", alert)
    await async_wait_until(lambda: any(r["status"] == "ok" for r in site.results()), 20, "result")
    work_order_id = site.results()[0]["work_order_id"]
    body = json.dumps(
        {"workOrderId": work_order_id, "orgId": 202, "oldStatus": "OPEN", "newStatus": "DONE"}
    ).encode()
    signature = sign("whsec-test", int(time.time()), body)
    assert await asyncio.to_thread(_post, port, "/maintainx/webhooks", body, signature) == 200
    assert hub.webhook_handler.outcomes["applied"] == 1, hub.webhook_handler.outcomes
    await async_wait_until(
        lambda: site.on(f"site-c/workorders/{work_order_id}"), 10, "work order message"
    )
    site.close()
