"""Two sites, two keys: every work order is made with its own site's key and organization;
a payload on one site's topic naming another site is refused and borrows nothing."""

from __future__ import annotations

import json
import random
from pathlib import Path

from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker
from tests.hub.conftest import (
    KEY_A,
    KEY_B,
    Site,
    async_wait_until,
    hub_dict,
    make_alert,
    start_hub,
)


def _ours(mx: Emulator, alert_ids: set[str]) -> list[dict]:
    return [
        wo for wo in mx.work_orders if (wo.get("externalData") or {}).get("alert_id") in alert_ids
    ]


async def test_each_site_uses_its_own_key_and_forgery_is_rejected(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list
) -> None:
    hub = await start_hub(hub_dict(mosquitto, emulator.url, tmp_path / "state"), tmp_path)
    running_hubs.append(hub)
    site = Site(mosquitto)
    site.subscribe("edge/v1/+/results")
    base = random.randrange(1 << 40)
    alerts_a = [make_alert("site-a", base + i) for i in range(5)]
    alerts_b = [make_alert("site-b", base + 100 + i) for i in range(5)]
    # Forged: published on site-a's topic, claims to be site-b.
    forged = make_alert("site-b", base + 999)
    for message in alerts_a:
        site.publish("edge/v1/site-a/alerts", message)
    for message in alerts_b:
        site.publish("edge/v1/site-b/alerts", message)
    site.publish("edge/v1/site-a/alerts", forged)

    ids = {m["alert_id"] for m in alerts_a + alerts_b}
    await async_wait_until(lambda: len(_ours(emulator, ids)) == 10, 20, "10 work orders")
    await async_wait_until(lambda: len(site.results()) >= 11, 10, "11 results")

    by_alert = {wo["externalData"]["alert_id"]: wo for wo in _ours(emulator, ids)}
    creates = {
        r.response["id"]: r
        for r in emulator.requests
        if r.method == "POST" and r.path.endswith("/workorders") and r.status == 200
    }
    for message, key, org in [(m, KEY_A, 101) for m in alerts_a] + [
        (m, KEY_B, 202) for m in alerts_b
    ]:
        work_order = by_alert[message["alert_id"]]
        request = creates[work_order["id"]]
        assert request.api_key == key
        assert request.organization_id == org
    # The forgery made nothing, under either key, and was answered on site-a's topic.
    assert not _ours(emulator, {forged["alert_id"]})
    rejected = [r for r in site.on("site-a/results") if r["status"] == "rejected"]
    assert [r["reason"] for r in rejected] == ["site_mismatch"]
    assert rejected[0]["event_id"] == forged["event_id"]
    assert hub.sites["site-a"].counters.rejected["site_mismatch"] == 1
    ok = [r for r in site.results() if r["status"] == "ok"]
    assert {r["action"] for r in ok} == {"created"}
    assert {r["alert_id"] for r in ok} == ids
    site.close()
    assert json.dumps(hub.readiness()[1])  # serialisable


async def test_escalated_and_cleared_update_and_comment_the_work_order(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list
) -> None:
    hub = await start_hub(hub_dict(mosquitto, emulator.url, tmp_path / "state"), tmp_path)
    running_hubs.append(hub)
    site = Site(mosquitto)
    site.subscribe("edge/v1/site-b/results")
    n = random.randrange(1 << 40)
    activated = make_alert("site-b", n, priority="LOW")
    activated["work_order"]["priority"] = "LOW"
    escalated = make_alert("site-b", n, "escalated", alert_id=activated["alert_id"])
    cleared = make_alert("site-b", n, "cleared", alert_id=activated["alert_id"])
    for message in (activated, escalated, cleared, escalated):  # the last one is a re-send
        site.publish("edge/v1/site-b/alerts", message)
    await async_wait_until(lambda: len(site.results()) >= 4, 20, "4 results")
    actions = [r["action"] for r in site.results()]
    assert actions == ["created", "escalated", "commented", "escalated"]
    (work_order,) = _ours(emulator, {activated["alert_id"]})
    assert work_order["priority"] == "HIGH"
    assert len(emulator.comments(work_order["id"])) == 2  # the re-send commented nothing
    site.close()


async def test_a_work_order_closed_without_its_webhook_is_not_commented_on(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list
) -> None:
    """MaintainX gives a webhook up after a few tries: the hub still thinks the rule's work
    order is open and the agent names it as related. The next episode must get its own
    work order (it used to become a comment on the closed one, and every later one too)."""
    hub = await start_hub(hub_dict(mosquitto, emulator.url, tmp_path / "state"), tmp_path)
    running_hubs.append(hub)
    site = Site(mosquitto)
    site.subscribe("edge/v1/site-b/#")
    n = random.randrange(1 << 40)
    first = make_alert("site-b", n, rule="pump-pressure")
    site.publish("edge/v1/site-b/alerts", first)
    await async_wait_until(lambda: len(site.results()) == 1, 20, "the first work order")
    (closed,) = _ours(emulator, {first["alert_id"]})
    # Closed at MaintainX; the webhook is never delivered (the events are dropped here).
    emulator.store.set_status(202, closed["id"], {"status": "DONE"}, None)  # site-b's org
    again = make_alert("site-b", n + 1, rule="pump-pressure", related_work_order=closed["id"])
    site.publish("edge/v1/site-b/alerts", again)
    await async_wait_until(lambda: len(site.results()) == 2, 20, "the second answer")
    assert site.results()[1]["action"] == "created", site.results()
    (new,) = _ours(emulator, {again["alert_id"]})
    assert new["id"] != closed["id"]
    assert emulator.comments(closed["id"]) == []
    # The site learns the close, as from a webhook: its tracker stops naming that order.
    await async_wait_until(
        lambda: any(m.get("status") == "DONE" for m in site.on(f"workorders/{closed['id']}")),
        20,
        "the close published to the site",
    )


async def test_a_reactivation_comment_whose_answer_was_lost_is_not_followed_by_a_work_order(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list
) -> None:
    """Found by the fault campaign (one hour, seed 1409049971): the re-activation comment
    was stored but its answer lost; before the retry a technician closed the work order, and
    the retry, seeing it closed, made a new one: a comment and a work order for one episode.
    The retry now finds its own comment and answers "commented"."""
    data = hub_dict(mosquitto, emulator.url, tmp_path / "state")
    data["maintainx"]["timeout"] = "300ms"
    data["hub"]["retry_interval"] = "100ms"
    hub = await start_hub(data, tmp_path)
    running_hubs.append(hub)
    site = Site(mosquitto)
    site.subscribe("edge/v1/site-b/results")
    n = random.randrange(1 << 40)
    first = make_alert("site-b", n, rule="pump-temp")
    site.publish("edge/v1/site-b/alerts", first)
    await async_wait_until(lambda: len(site.results()) == 1, 20, "the first work order")
    (open_order,) = _ours(emulator, {first["alert_id"]})
    emulator.faults.stall_s = 1.0  # stored, then no answer within the hub's timeout
    emulator.faults.timeout_after_store_rate = 1.0
    try:
        again = make_alert("site-b", n + 1, rule="pump-temp", related_work_order=open_order["id"])
        site.publish("edge/v1/site-b/alerts", again)
        await async_wait_until(
            lambda: any(r["status"] == "parked" for r in site.results()), 20, "parked"
        )
        assert len(emulator.comments(open_order["id"])) == 1  # the lost answer's comment
    finally:
        emulator.faults.reset()
    emulator.store.set_status(202, open_order["id"], {"status": "DONE"}, None)  # no webhook
    await async_wait_until(
        lambda: any(
            r["status"] == "ok" and r.get("alert_id") == again["alert_id"] for r in site.results()
        ),
        30,
        "the retry's answer",
    )
    final = [r for r in site.results() if r.get("alert_id") == again["alert_id"]][-1]
    assert final["action"] == "commented" and final["work_order_id"] == open_order["id"]
    assert _ours(emulator, {again["alert_id"]}) == []  # no second work order
    assert len(emulator.comments(open_order["id"])) == 1
    site.close()
