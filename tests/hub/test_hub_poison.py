"""One message never stops the hub (issue 11 §2): a well-formed alert with a value no store
can hold, a work order with assignees of the wrong shape, a signed webhook with an absurd id,
and a message whose handling raises are each answered ``rejected``, counted and
acknowledged, and the next healthy alarm still becomes its work order."""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import edge_agent.hub.consumer as consumer_module
from edge_agent.hub.app import Hub
from edge_agent.hub.webhooks import SIGNATURE_HEADER, sign
from edge_agent.redaction import redact
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker
from tests.hub.conftest import KEY_A, KEY_B, Site, async_wait_until, hub_dict, make_alert, start_hub


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _post(port: int, path: str, body: bytes, signature: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def _ours(mx: Emulator, ids: set[str]) -> list[dict[str, Any]]:
    return [wo for wo in mx.work_orders if (wo.get("externalData") or {}).get("alert_id") in ids]


async def _healthy_alarm_still_served(hub: Hub, mosquitto: Broker, emulator: Emulator) -> None:
    """The invariant: another site's alarm becomes its work order, and the hub is ready."""
    good = make_alert("site-b", random.randrange(1 << 40))
    site = Site(mosquitto)
    try:
        site.publish("edge/v1/site-b/alerts", good)
        await async_wait_until(
            lambda: len(_ours(emulator, {good["alert_id"]})) == 1, 15, "the healthy alarm"
        )
    finally:
        site.close()
    status, body = await asyncio.to_thread(_get, hub.health_port, "/readyz")
    assert status == 200, body
    assert hub.store is not None and hub.store.failure() is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"time": "2300-01-01T00:00:00Z"},
        {"related_work_order": 10**30},
        {"time_ns": 10**30},
        {"asset": {"id": "pump", "name": "Pump", "maintainx_id": 10**30}},
        {"value": float("inf")},
    ],
    ids=["time-2300", "related-1e30", "time_ns-1e30", "maintainx_id-1e30", "value-inf"],
)
async def test_out_of_range_values_are_rejected_not_fatal(
    overrides: dict[str, Any],
    mosquitto: Broker,
    emulator: Emulator,
    tmp_path: Path,
    running_hubs: list[Hub],
) -> None:
    hub = await start_hub(hub_dict(mosquitto, emulator.url, tmp_path / "s"), tmp_path)
    running_hubs.append(hub)
    site = Site(mosquitto)
    site.subscribe("edge/v1/site-a/results")
    bad = make_alert("site-a", random.randrange(1 << 40), **overrides)
    site.client.publish("edge/v1/site-a/alerts", json.dumps(bad, allow_nan=True), qos=1)
    # Twice: a redelivered bad message is answered the same way.
    site.client.publish("edge/v1/site-a/alerts", json.dumps(bad, allow_nan=True), qos=1)
    await async_wait_until(lambda: len(site.results()) >= 2, 15, "the answers")
    for answer in site.results():
        assert answer["event_id"] == bad["event_id"]
        assert answer["status"] == "rejected" and answer["reason"] == "invalid_fields"
    assert not _ours(emulator, {bad["alert_id"]})
    site.close()
    await _healthy_alarm_still_served(hub, mosquitto, emulator)


async def test_wrongly_shaped_assignees_never_starve_the_broker(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list[Hub]
) -> None:
    """30 alerts with ``assignees: [1]`` (more than the broker's in-flight window of 20)."""
    hub = await start_hub(hub_dict(mosquitto, emulator.url, tmp_path / "s"), tmp_path)
    running_hubs.append(hub)
    site = Site(mosquitto)
    site.subscribe("edge/v1/site-a/results")
    base = random.randrange(1 << 40)
    bad = []
    for n in range(30):
        message = make_alert("site-a", base + n)
        message["work_order"]["assignees"] = [1]
        bad.append(message)
    site.publish_many([("edge/v1/site-a/alerts", json.dumps(m).encode()) for m in bad])
    await async_wait_until(lambda: len(site.results()) >= 30, 20, "30 answers")
    assert {r["reason"] for r in site.results()} == {"invalid_fields"}
    assert "assignees[0]" in site.results()[0]["detail"]
    site.close()
    await _healthy_alarm_still_served(hub, mosquitto, emulator)


async def test_a_signed_webhook_with_an_absurd_id_is_answered_and_harmless(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list[Hub]
) -> None:
    hub = await start_hub(
        hub_dict(mosquitto, emulator.url, tmp_path / "s", webhooks=True), tmp_path
    )
    running_hubs.append(hub)
    for work_order_id in (10**30, -5, 0):
        body = json.dumps(
            {"workOrderId": work_order_id, "newStatus": "DONE", "orgId": 101}
        ).encode()
        signature = sign("whsec-test", int(time.time()), body)
        status, answer = await asyncio.to_thread(
            _post, hub.webhook_port, "/maintainx/webhooks/site-a", body, signature
        )
        assert (status, answer) == (200, {"result": "invalid"})
    await _healthy_alarm_still_served(hub, mosquitto, emulator)


async def test_a_poison_message_is_answered_recorded_and_acknowledged(
    mosquitto: Broker,
    emulator: Emulator,
    tmp_path: Path,
    running_hubs: list[Hub],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Handling that raises (here: a bug injected into the MaintainX call for some titles) is
    parked for one more try (reason ``unexpected_error``, not answered yet), then, raising
    again, answered ``rejected``/``poison`` with a redacted reason, acknowledged (25 of them,
    more than the broker's in-flight window) and recorded: a redelivery is answered from the
    record and the failing code is not run a third time."""
    calls: list[str] = []
    real_apply = consumer_module.apply_alert

    async def apply_alert(client: Any, ledger: Any, message: Any, **kwargs: Any) -> Any:
        if message["work_order"]["title"].startswith("POISON"):
            calls.append(message["event_id"])
            raise RuntimeError(f"injected bug; the key was {KEY_A}")
        return await real_apply(client, ledger, message, **kwargs)

    monkeypatch.setattr(consumer_module, "apply_alert", apply_alert)
    data = hub_dict(mosquitto, emulator.url, tmp_path / "s", retry_interval="200ms")
    hub = await start_hub(data, tmp_path)
    running_hubs.append(hub)
    site = Site(mosquitto)
    site.subscribe("edge/v1/site-a/results")
    base = random.randrange(1 << 40)
    poison = []
    for n in range(25):
        message = make_alert("site-a", base + n)
        message["work_order"]["title"] = f"POISON {n}"
        poison.append(message)
    site.publish_many([("edge/v1/site-a/alerts", json.dumps(m).encode()) for m in poison])
    await async_wait_until(lambda: len(site.results()) >= 25, 30, "25 answers")
    site.publish("edge/v1/site-a/alerts", poison[0])  # redelivered
    await async_wait_until(lambda: len(site.results()) >= 26, 10, "the redelivery's answer")

    assert len(calls) == 50, "a redelivered poison message must be answered from the record"
    for answer in site.results():
        assert answer["status"] == "rejected" and answer["reason"] == "poison"
    assert "RuntimeError" in site.results()[0]["detail"]
    everything = json.dumps(site.received)
    assert KEY_A not in everything and KEY_B not in everything
    assert redact(f"x {KEY_A} {KEY_B} x") == "x *** *** x"
    assert hub.consumer is not None and hub.consumer.stats.poison == 25
    assert hub.consumer.stats.unexpected == 25
    status, text = await asyncio.to_thread(_get, hub.health_port, "/metrics")
    assert 'edge_agent_hub_alerts_rejected_total{reason="poison",site="site-a"} 25.0' in text
    site.close()
    await _healthy_alarm_still_served(hub, mosquitto, emulator)


async def test_a_dying_store_writer_fails_its_callers_and_the_hub(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list[Hub]
) -> None:
    """Whatever ends the SQLite writer thread: every waiting caller gets an error (none waits
    forever), ``/readyz`` fails and ``failed`` is set so that the command exits non-zero."""
    from edge_agent.hub.store import StoreError
    from edge_agent.hub.store_sqlite import SqliteHubStore

    hub = await start_hub(hub_dict(mosquitto, emulator.url, tmp_path / "s"), tmp_path)
    running_hubs.append(hub)
    store = hub.store
    assert isinstance(store, SqliteHubStore)

    def die(db: object) -> None:
        raise SystemExit("the writer thread ends")

    doomed = store._w.submit(die)  # noqa: SLF001 - the fault is injected at the thread itself
    with pytest.raises((StoreError, SystemExit)):
        await asyncio.wait_for(asyncio.wrap_future(doomed), 5)
    with pytest.raises(StoreError):
        await asyncio.wait_for(asyncio.to_thread(store.result_of, "any"), 5)
    await asyncio.wait_for(hub.failed.wait(), 5)
    status, body = await asyncio.to_thread(_get, hub.health_port, "/readyz")
    assert status == 503
    assert "dedup store failed" in json.loads(body)["reasons"][0]


async def test_one_site_never_reaches_another_sites_work_order_or_answers(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list[Hub]
) -> None:
    """Found in review: dedup was keyed by alert and event id alone, so site-b naming
    site-a's alert id got site-a's work order (and commented on it with site-b's key), and
    naming site-a's event id read site-a's answer. Ids are a site's own now."""
    hub = await start_hub(hub_dict(mosquitto, emulator.url, tmp_path / "s"), tmp_path)
    running_hubs.append(hub)
    site_a, site_b = Site(mosquitto), Site(mosquitto)
    site_a.subscribe("edge/v1/site-a/results")
    site_b.subscribe("edge/v1/site-b/results")
    try:
        first = make_alert("site-a", random.randrange(1 << 40))
        site_a.publish("edge/v1/site-a/alerts", first)
        await async_wait_until(lambda: len(site_a.results()) == 1, 15, "site-a's answer")
        [created] = site_a.results()
        assert created["status"] == "ok" and created["work_order_id"] is not None

        same_alert = make_alert("site-b", 1, alert_id=first["alert_id"])
        same_alert["event_id"] = f"{first['alert_id']}:cleared"
        same_alert["event"] = "cleared"
        same_event = make_alert("site-b", 2)
        same_event["event_id"] = first["event_id"]
        for message in (same_alert, same_event):
            site_b.publish("edge/v1/site-b/alerts", message)
        await async_wait_until(lambda: len(site_b.results()) == 2, 15, "site-b's answers")
        for answer in site_b.results():
            assert answer["status"] == "rejected" and answer["reason"] == "foreign_id"
            assert answer.get("work_order_id") is None
        # site-a's work order has no comment from site-b, and nothing new was made.
        assert len(_ours(emulator, {first["alert_id"]})) == 1
        assert emulator.comments(created["work_order_id"]) == []
    finally:
        site_a.close()
        site_b.close()
    await _healthy_alarm_still_served(hub, mosquitto, emulator)


async def test_a_blocked_site_naming_another_sites_ids_is_rejected_not_parked(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list[Hub]
) -> None:
    """The foreign-id check is the store's first step of an event (issue 16); a site that
    cannot be served right now never gets that far (its events are parked), so it is
    checked on that path too: another site's ids are rejected, never parked."""
    hub = await start_hub(hub_dict(mosquitto, emulator.url, tmp_path / "s"), tmp_path)
    running_hubs.append(hub)
    site_a, site_b = Site(mosquitto), Site(mosquitto)
    site_a.subscribe("edge/v1/site-a/results")
    site_b.subscribe("edge/v1/site-b/results")
    try:
        first = make_alert("site-a", random.randrange(1 << 40))
        site_a.publish("edge/v1/site-a/alerts", first)
        await async_wait_until(lambda: len(site_a.results()) == 1, 15, "site-a's answer")
        hub.sites["site-b"].block("rate limited", 60)
        stolen = make_alert("site-b", 1, alert_id=first["alert_id"])
        stolen["event_id"] = f"{first['alert_id']}:cleared"
        stolen["event"] = "cleared"
        site_b.publish("edge/v1/site-b/alerts", stolen)
        await async_wait_until(lambda: len(site_b.results()) == 1, 15, "site-b's answer")
        [answer] = site_b.results()
        assert answer["status"] == "rejected" and answer["reason"] == "foreign_id"
        assert hub.store is not None
        assert await asyncio.to_thread(hub.store.pending_counts) == {}
    finally:
        site_a.close()
        site_b.close()


async def test_a_number_python_refuses_is_not_json_answered_and_counted(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list[Hub]
) -> None:
    """Found in review: a 5,000-digit integer in an ignored key raised ValueError before the
    poison handling, so the message got no answer and no count."""
    hub = await start_hub(hub_dict(mosquitto, emulator.url, tmp_path / "s"), tmp_path)
    running_hubs.append(hub)
    site = Site(mosquitto)
    site.subscribe("edge/v1/site-a/results")
    try:
        message = json.dumps(make_alert("site-a", random.randrange(1 << 40)))
        site.publish("edge/v1/site-a/alerts", message[:-1] + ', "extra": ' + "9" * 5000 + "}")
        await async_wait_until(lambda: len(site.results()) == 1, 15, "the answer")
        [answer] = site.results()
        assert answer["status"] == "rejected" and answer["reason"] == "not_json"
    finally:
        site.close()
    await _healthy_alarm_still_served(hub, mosquitto, emulator)
