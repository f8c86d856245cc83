"""The forwarder publishes the JSON the outbox stored, as it is (issue 16: the payload was
decoded by the lease and encoded again per send), with either confirmation, against a real
mosquitto; a row laid out otherwise is still encoded and sent."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import edge_agent.forwarders.hub_tracking as hub_tracking
import edge_agent.forwarders.mqtt as mqtt_forwarder
from edge_agent.forwarders.mqtt import MqttForwarder
from edge_agent.outbox import Outbox
from edge_agent.outbox.jsondisk import encode_json

from .conftest import TunedBroker, async_wait_until, events, mqtt_config, running
from .test_hub_confirm import ScriptedHub, alarms, hub_forwarder


@pytest.fixture
def outbox(tmp_path: Path) -> Any:
    store = Outbox.open(tmp_path / "outbox", 50_000_000)
    yield store
    store.close()


@pytest.fixture
def counted_encodes(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every payload the forwarder encodes itself (wherever it takes the function from)."""
    encoded: list[Any] = []
    original = hub_tracking.encode_payload

    def counting(payload: Any) -> bytes:
        encoded.append(payload)
        return original(payload)

    monkeypatch.setattr(hub_tracking, "encode_payload", counting)
    monkeypatch.setattr(mqtt_forwarder, "encode_payload", counting)
    return encoded


def _with_text(site: str, count: int) -> list[dict[str, Any]]:
    return [
        {**e, "text": "Überdruck — ça déborde 漏れ 🚨", "value": 7.25} for e in events(site, count)
    ]


async def test_confirm_broker_publishes_the_stored_bytes(
    broker: TunedBroker,
    names: tuple[str, str],
    outbox: Outbox,
    subscribe: Any,
    tmp_path: Path,
    counted_encodes: list[Any],
) -> None:
    prefix, site = names
    sub = subscribe(broker.port, f"{prefix}/{site}/alerts")
    sent = _with_text(site, 20)
    outbox.put_many(sent)
    forwarder = MqttForwarder(mqtt_config(broker.port, prefix), site, outbox, tmp_path)
    async with running(forwarder):
        await async_wait_until(lambda: forwarder.status.sent == 20, what="20 acked")
    bodies = [body for _, body, _ in sub.messages]
    assert bodies == [encode_json(p) for p in sent]  # byte for byte, in order
    assert counted_encodes == []  # nothing encoded again


async def test_confirm_hub_publishes_the_stored_bytes(
    broker: TunedBroker,
    names: tuple[str, str],
    outbox: Outbox,
    subscribe: Any,
    tmp_path: Path,
    counted_encodes: list[Any],
) -> None:
    prefix, site = names
    hub = ScriptedHub(broker.port, prefix, site)
    try:
        sub = subscribe(broker.port, f"{prefix}/{site}/alerts")
        sent = [{**a, "text": "ça déborde 漏れ"} for a in alarms(site, 5)]
        outbox.put_many(sent)
        forwarder = hub_forwarder(broker.port, prefix, site, outbox, tmp_path)
        async with running(forwarder):
            await async_wait_until(lambda: len(hub.distinct()) == 5, what="5 published")
            for payload in sent:
                hub.answer(payload)
            await async_wait_until(lambda: forwarder.status.sent == 5, what="5 confirmed")
        assert [body for _, body, _ in sub.messages] == [encode_json(p) for p in sent]
        assert counted_encodes == []
        assert outbox.stats().depth == 0 and outbox.awaiting_count() == 0
    finally:
        hub.close()


async def test_a_row_laid_out_otherwise_is_encoded_and_sent(
    broker: TunedBroker,
    names: tuple[str, str],
    subscribe: Any,
    tmp_path: Path,
    counted_encodes: list[Any],
) -> None:
    prefix, site = names
    directory = tmp_path / "outbox"
    sent = events(site, 3)
    with Outbox.open(directory, 50_000_000) as store:
        ids = store.put_many(sent)
    # The same record, written with spaces and another key order (as a hand or another
    # writer might): still a good row, but its payload's bytes are not the wire form.
    with sqlite3.connect(directory / "cache.db") as db:
        db.execute(
            "UPDATE Cache SET value = ? WHERE key = ? AND raw = 1",
            (b'{"t": 1.0, "a": 0, "e": null, "p": ' + encode_json(sent[1]) + b"}", ids[1]),
        )
    sub = subscribe(broker.port, f"{prefix}/{site}/alerts")
    with Outbox.open(directory, 50_000_000) as store:
        forwarder = MqttForwarder(mqtt_config(broker.port, prefix), site, store, tmp_path)
        async with running(forwarder):
            await async_wait_until(lambda: forwarder.status.sent == 3, what="3 acked")
    assert [body for _, body, _ in sub.messages] == [encode_json(p) for p in sent]
    assert counted_encodes == [sent[1]]
