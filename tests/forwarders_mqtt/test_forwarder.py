"""The MQTT forwarder against a real mosquitto: order, acks, birth and will, v3.1.1,
credentials, v5 failure reason codes, reconnects."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from edge_agent.forwarders.mqtt import MqttForwarder
from edge_agent.outbox import Outbox
from tests.conftest import free_port

from .conftest import (
    TunedBroker,
    async_wait_until,
    events,
    first_occurrences,
    make_broker,
    mqtt_config,
    running,
)


@pytest.fixture
def outbox(tmp_path: Path) -> Any:
    store = Outbox.open(tmp_path / "outbox", 50_000_000)
    yield store
    store.close()


async def test_drains_in_order_and_acks_only_delivered(
    broker: TunedBroker, names: tuple[str, str], outbox: Outbox, subscribe: Any, tmp_path: Path
) -> None:
    prefix, site = names
    sub = subscribe(broker.port, f"{prefix}/{site}/#")
    outbox.put_many(events(site, 300))
    forwarder = MqttForwarder(mqtt_config(broker.port, prefix), site, outbox, tmp_path)
    alerts = f"{prefix}/{site}/alerts"
    async with running(forwarder):
        await async_wait_until(lambda: len(sub.payloads(alerts)) >= 300, what="300 alerts")
        await async_wait_until(lambda: outbox.stats().depth == 0, what="outbox drained")
        got = sub.payloads(alerts)
        assert [p["seq"] for p in got] == list(range(300))  # no loss, no dup, in order
        assert got[0] == events(site, 1)[0]  # the stored JSON, unchanged
        # The outbox ack lands (in a worker thread) just before the count is updated.
        await async_wait_until(lambda: forwarder.status.sent == 300, what="300 counted")
        assert forwarder.status.connected
        assert forwarder.status.failed == 0
        # Birth: retained `online` on the status topic.
        status = sub.payloads(f"{prefix}/{site}/status")
        assert status and status[-1]["state"] == "online" and status[-1]["site"] == site
        # Events put while running are picked up too.
        outbox.put(events(site, 1, start=300)[0])
        await async_wait_until(lambda: len(sub.payloads(alerts)) == 301, what="late event")
    # A clean close publishes `offline` (retained), seen by a newcomer.
    late = subscribe(broker.port, f"{prefix}/{site}/status")
    await async_wait_until(lambda: bool(late.payloads()), what="retained status")
    assert late.payloads()[-1]["state"] == "offline"
    assert late.messages[-1][2] is True  # retained


async def test_mqtt_311_and_password_from_secret(
    tmp_path: Path,
    names: tuple[str, str],
    outbox: Outbox,
    subscribe: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix, site = names
    broker = make_broker(
        tmp_path, acl=f"topic read {prefix}/#\nuser agent\ntopic readwrite {prefix}/#\n"
    )
    try:
        monkeypatch.setenv("EDGE_TEST_MQTT_PASSWORD", "not-checked-by-this-broker")
        sub = subscribe(broker.port, f"{prefix}/{site}/alerts")
        outbox.put_many(events(site, 50))
        config = mqtt_config(
            broker.port,
            prefix,
            protocol="3.1.1",
            username="agent",
            password="${EDGE_TEST_MQTT_PASSWORD}",
            inflight=5,
        )
        forwarder = MqttForwarder(config, site, outbox, tmp_path)
        async with running(forwarder):
            await async_wait_until(lambda: len(sub.payloads()) >= 50, what="50 alerts")
            await async_wait_until(lambda: outbox.stats().depth == 0, what="drained")
        assert [p["seq"] for p in sub.payloads()] == list(range(50))
    finally:
        broker.kill()


async def test_v5_failure_reason_code_keeps_the_item(
    tmp_path: Path, names: tuple[str, str], outbox: Outbox
) -> None:
    prefix, site = names
    # The user may publish its status but not its alerts: mosquitto answers PUBACK 0x87.
    broker = make_broker(tmp_path, acl=f"user agent\ntopic write {prefix}/{site}/status\n")
    try:
        ids = outbox.put_many(events(site, 3))
        config = mqtt_config(broker.port, prefix, username="agent", inflight=3)
        forwarder = MqttForwarder(config, site, outbox, tmp_path)
        async with running(forwarder):
            await async_wait_until(lambda: forwarder.status.failed >= 3, what="refusals")
            assert forwarder.status.refused_by_broker >= 3
            assert "0x87" in (forwarder.status.last_error or "")
            assert forwarder.status.sent == 0
        stats = outbox.stats()
        assert stats.depth == 3 and stats.dead == 0
        items = outbox.lease(10)
        assert [i.id for i in items] == ids
        assert all(i.attempts >= 1 for i in items)
    finally:
        broker.kill()


async def test_connects_when_the_broker_comes_up_late(
    tmp_path: Path, names: tuple[str, str], outbox: Outbox, subscribe: Any
) -> None:
    prefix, site = names
    port = free_port()  # nothing listens yet: connection refused, retried with backoff
    outbox.put_many(events(site, 20))
    forwarder = MqttForwarder(mqtt_config(port, prefix), site, outbox, tmp_path)
    broker = TunedBroker(port=port, workdir=tmp_path / "late-broker")
    broker.workdir.mkdir()
    async with running(forwarder):
        await asyncio.sleep(0.5)
        assert not forwarder.status.connected
        assert forwarder.status.sent == 0
        await asyncio.to_thread(broker.start)
        try:
            sub = subscribe(port, f"{prefix}/{site}/alerts")
            # Published before the subscriber may have joined: check the outbox instead.
            await async_wait_until(lambda: outbox.stats().depth == 0, what="drained")
            await async_wait_until(lambda: forwarder.status.sent == 20, what="20 counted")
            assert forwarder.status.connected
            del sub
        finally:
            broker.kill()
    assert outbox.stats().depth == 0


async def test_broker_sigkill_resends_in_flight_in_order(
    names: tuple[str, str], outbox: Outbox, subscribe: Any, tmp_path: Path
) -> None:
    prefix, site = names
    # A SIGKILLed broker only keeps what its last save wrote. With the default time-based
    # autosave it lost, under load, more than a window of messages it had PUBACKed; saving
    # after every change leaves only what it acknowledged in its last loop iteration (at
    # most one in-flight window; measured 0-2).
    broker = make_broker(tmp_path, extra="autosave_on_changes true\n")
    try:
        await _broker_sigkill_run(broker, prefix, site, outbox, subscribe, tmp_path)
    finally:
        broker.kill()


async def _broker_sigkill_run(
    broker: TunedBroker, prefix: str, site: str, outbox: Outbox, subscribe: Any, tmp_path: Path
) -> None:
    sub = subscribe(broker.port, f"{prefix}/{site}/alerts")
    # Wait for the subscriber's session to be on disk.
    await async_wait_until(lambda: (broker.workdir / "mosquitto.db").exists(), what="autosave")
    outbox.put_many(events(site, 400))
    forwarder = MqttForwarder(
        mqtt_config(broker.port, prefix, inflight=50), site, outbox, tmp_path, idle_poll_s=0.01
    )
    async with running(forwarder):
        await async_wait_until(lambda: forwarder.status.sent >= 1, what="first ack")
        await asyncio.to_thread(broker.kill)
        await async_wait_until(lambda: not forwarder.status.connected, what="disconnect")
        # The items in flight go back to the queue (nacked), keeping their place.
        await async_wait_until(lambda: outbox.stats().leased == 0, what="in-flight nacked")
        assert outbox.stats().depth > 0
        await asyncio.to_thread(broker.start)
        await async_wait_until(lambda: outbox.stats().depth == 0, what="drained", timeout_s=30)
        await async_wait_until(lambda: forwarder.status.sent >= 400, what="400 counted")
        # Everything published after the restart arrives: the last event is the proof.
        await async_wait_until(lambda: 399 in {p["seq"] for p in sub.payloads()}, what="last")
    order = first_occurrences(sub.payloads())
    assert order == sorted(order)  # in order, redeliveries aside
    # A SIGKILLed mosquitto can lose what it acknowledged but had not yet written to the
    # subscriber or to its autosave: at most the messages of one in-flight window.
    assert len(set(range(400)) - set(order)) <= 50
    assert forwarder.status.reconnects >= 1
    assert forwarder.status.sent >= 400


def test_status_payload_is_json() -> None:
    from edge_agent.forwarders.mqtt import status_payload

    document = json.loads(status_payload("online", "plant-a"))
    assert document["state"] == "online" and document["site"] == "plant-a"
    assert document["time"].endswith("Z")
