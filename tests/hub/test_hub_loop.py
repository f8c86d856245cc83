"""The loop closed end to end: while a rule's work order is open, a re-activation comments
on it; once MaintainX says DONE, the next activation makes a new work order."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from edge_agent.forwarders.workorder_status import WorkOrderTracker, status_topics
from edge_agent.hub.config import HubConfig
from edge_agent.hub.subscriptions import register_webhooks
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker
from tests.hub.conftest import Site, async_wait_until, hub_dict, make_alert, start_hub


async def test_reactivation_comments_while_open_and_creates_after_done(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list
) -> None:
    data = hub_dict(mosquitto, emulator.url, tmp_path / "s", webhooks=True)
    port = int(data["webhooks"]["listen"].rsplit(":", 1)[1])
    data["webhooks"]["public_url"] = f"http://127.0.0.1:{port}/maintainx/webhooks"
    await register_webhooks(HubConfig.model_validate(data), tmp_path)
    hub = await start_hub(data, tmp_path)
    running_hubs.append(hub)
    tracker = WorkOrderTracker(tmp_path / "agent", "site-a")
    site = Site(mosquitto)
    for topic in status_topics("edge/v1", "site-a"):
        site.subscribe(topic)
    seen = 0

    def feed() -> None:
        nonlocal seen
        for topic, body, _ in site.received[seen:]:
            import json

            tracker.on_message(topic, json.dumps(body).encode())
        seen = len(site.received)

    rule = f"rule-{random.randrange(1 << 30)}"
    base = random.randrange(1 << 40)
    first = make_alert("site-a", base, rule=rule)
    site.publish("edge/v1/site-a/alerts", tracker.annotate(first))
    await async_wait_until(lambda: (feed(), tracker.open_work_order_for(rule))[1] is not None, 20)
    work_order_id = tracker.open_work_order_for(rule)

    second = tracker.annotate(make_alert("site-a", base + 1, rule=rule))
    assert second["related_work_order"] == work_order_id
    site.publish("edge/v1/site-a/alerts", second)
    await async_wait_until(
        lambda: any(r.get("event_id") == second["event_id"] for r in site.results()), 20
    )
    answer = next(r for r in site.results() if r["event_id"] == second["event_id"])
    assert answer["action"] == "commented" and answer["work_order_id"] == work_order_id
    assert any(second["alert_id"] in c["content"] for c in emulator.comments(work_order_id))

    await asyncio.to_thread(emulator.change_status, work_order_id, "DONE")
    await async_wait_until(lambda: (feed(), tracker.open_work_order_for(rule))[1] is None, 20)
    # The map survives a restart of the agent.
    assert WorkOrderTracker(tmp_path / "agent", "site-a").snapshot()[rule].status == "DONE"

    third = tracker.annotate(make_alert("site-a", base + 2, rule=rule))
    assert "related_work_order" not in third
    site.publish("edge/v1/site-a/alerts", third)
    await async_wait_until(lambda: (feed(), tracker.open_work_order_for(rule))[1] is not None, 20)
    assert tracker.open_work_order_for(rule) != work_order_id
    site.close()
