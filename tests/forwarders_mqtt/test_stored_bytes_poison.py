"""A queue row the outbox could never have written (a lone surrogate, NaN, a number that
overflows a double), tampered in or left by another writer: decoding it succeeds, but the
outbox cannot write it back (a nack, awaiting the hub) and the wire cannot carry it. It must
become a dead letter at the lease, not stall the drain of the events behind it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from edge_agent.forwarders.mqtt import MqttForwarder
from edge_agent.outbox import Outbox
from edge_agent.outbox.jsondisk import encode_json

from .conftest import TunedBroker, async_wait_until, mqtt_config, running
from .test_hub_confirm import ScriptedHub, alarms, hub_forwarder

# Each stands for the payload's "text" field as stored, byte for byte.
POISON = {
    "escaped_surrogate": b'"a\\ud800b"',
    "encoded_surrogate": b'"a\xed\xa0\x80b"',
    "nan": b"NaN",
    "infinity": b"-Infinity",
    "overflow": b"1e400",
}


def _tamper(directory: Path, item_id: int, payload: dict[str, Any], text: bytes) -> None:
    body = encode_json({**payload, "text": "X"}).replace(b'"X"', text)
    row = b'{"p":' + body + b',"t":1.0,"a":0,"e":null}'
    with sqlite3.connect(directory / "cache.db") as db:
        db.execute("UPDATE Cache SET value = ? WHERE key = ? AND raw = 1", (row, item_id))


@pytest.mark.parametrize("kind", sorted(POISON))
@pytest.mark.parametrize("confirm", ["broker", "hub"])
async def test_a_row_that_cannot_be_written_back_is_a_dead_letter(
    broker: TunedBroker,
    names: tuple[str, str],
    subscribe: Any,
    tmp_path: Path,
    kind: str,
    confirm: str,
) -> None:
    prefix, site = names
    directory = tmp_path / "outbox"
    sent = alarms(site, 4)
    with Outbox.open(directory, 50_000_000) as store:
        ids = store.put_many(sent)
    _tamper(directory, ids[1], sent[1], POISON[kind])
    sub = subscribe(broker.port, f"{prefix}/{site}/alerts")
    hub = ScriptedHub(broker.port, prefix, site) if confirm == "hub" else None
    try:
        with Outbox.open(directory, 50_000_000) as store:
            forwarder: MqttForwarder
            if hub is not None:
                forwarder = hub_forwarder(broker.port, prefix, site, store, tmp_path)
            else:
                forwarder = MqttForwarder(mqtt_config(broker.port, prefix), site, store, tmp_path)
            good = [sent[0], *sent[2:]]
            async with running(forwarder) as task:
                if hub is not None:
                    await async_wait_until(
                        lambda: {p["event_id"] for p in good} <= hub.distinct(), what="published"
                    )
                    for payload in good:
                        hub.answer(payload)
                await async_wait_until(
                    lambda: forwarder.status.sent == 3 or task.done(), what="3 delivered"
                )
                assert not task.done(), task.exception()
            assert store.stats().depth == 0 and store.awaiting_count() == 0
            (letter,) = store.dead_letters()
            assert letter.id == ids[1]
            assert "refused stored row" in letter.reason
        # Only what the hub can read went out, each the bytes the outbox stored.
        bodies = [body for _, body, _ in sub.messages]
        assert bodies[:3] == [encode_json(p) for p in good]
    finally:
        if hub is not None:
            hub.close()
