"""Fault suite, boundary: what the agent reads back from the hub over MQTT (the results
topic and the hub-status topics).

Hypothesis generates garbage — bytes that are not JSON, JSON of the wrong shape or types,
results naming unknown events, results naming an awaited event with the wrong alert or a
status that is not final, payloads far too large, nesting too deep — and a scripted hub
sends it through a real mosquitto to a running forwarder (``confirm: hub``). Invariants:
the forwarder keeps running; every message is counted (valid, unknown or invalid) and each
invalid one logged; no item leaves the outbox that the hub did not confirm; the healthy
alarms the hub does confirm leave it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.forwarders.hub_confirm import HubPresence
from edge_agent.outbox import Outbox
from edge_agent.wire.result import BadMessage, parse_result
from tests.forwarders_mqtt.conftest import (
    TunedBroker,
    async_wait_until,
    events,
    make_broker,
    running,
)
from tests.forwarders_mqtt.test_hub_confirm import ScriptedHub, hub_forwarder

HEALTHY = 10
UNANSWERED = 5

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
result_keys = st.sampled_from(
    ["event_id", "alert_id", "status", "reason", "detail", "site", "work_order_id"]
)
shapeless = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(result_keys | st.text(max_size=8), json_values, max_size=7).map(
        lambda d: json.dumps(d).encode()
    ),
    st.integers(min_value=1, max_value=3).map(lambda k: b"[" * (10_000 * k)),  # too deep
    st.integers(min_value=65_537, max_value=300_000).map(lambda n: b" " * n),  # too large
)


def mischief(target: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Results that name an awaited event but must not confirm it."""
    wrong_status = st.one_of(
        st.sampled_from(["OK", "done", "", "pending", "accepted"]),
        st.integers(),
        st.none(),
        st.lists(st.just("ok"), max_size=2),
    )
    base = {"event_id": target["event_id"], "alert_id": target["alert_id"]}
    return st.one_of(
        wrong_status.map(lambda s: {**base, "status": s}),
        st.text(max_size=30)
        .filter(lambda a: a != target["alert_id"])
        .map(lambda a: {**base, "alert_id": a, "status": "ok"}),
        st.sampled_from(["ok", "parked"]).map(
            lambda s: {"event_id": target["event_id"], "status": s}  # no alert id
        ),
        st.text(min_size=1, max_size=30)
        .filter(lambda a: a != target["alert_id"])
        .map(lambda a: {**base, "alert_id": a, "status": "rejected"}),
        st.integers(65_536, 200_000).map(lambda n: {**base, "status": "ok", "detail": "x" * n}),
        json_values.map(lambda v: {**base, "status": "ok", "event_id": [v]}),
    ).map(lambda d: json.dumps(d).encode())


def collect(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """``count`` varied examples drawn by hypothesis (a test run whose body only keeps them)."""
    drawn: list[Any] = []

    @settings(max_examples=count, database=None)
    @given(strategy)
    def keep(value: Any) -> None:
        drawn.append(value)

    keep()
    return drawn


@settings(max_examples=300)
@given(shapeless)
def test_the_parsers_refuse_garbage_with_their_own_error(payload: bytes) -> None:
    try:
        result = parse_result(payload)
    except BadMessage:
        pass  # the only way to refuse
    else:
        assert result.status in ("ok", "parked", "rejected")
    presence = HubPresence()
    try:
        presence.update("hub-x", payload)
    except BadMessage:
        assert presence.state == "unknown"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TunedBroker]:
    started = make_broker(tmp_path)
    try:
        yield started
    finally:
        started.kill()


async def test_garbage_from_the_hub_never_confirms_an_item(
    broker: TunedBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prefix, site = "tfault/v1", "site-fault"
    alarms = [{**e, "alert_id": f"al-{e['seq']:06d}"} for e in events(site, HEALTHY + UNANSWERED)]
    healthy, unanswered = alarms[:HEALTHY], alarms[HEALTHY:]
    garbage = collect(shapeless, 60)
    for target in unanswered:
        garbage += collect(mischief(target), 8)
    replicas = st.sampled_from(["hub-a", "hub-b", "Hub_C", "-x", "a" * 64]) | st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="+#/"),
        min_size=1,
        max_size=70,
    )
    statuses = collect(st.tuples(replicas, shapeless), 30)

    outbox = Outbox.open(tmp_path / "outbox", 50_000_000)
    hub = ScriptedHub(broker.port, prefix, site)
    results_topic = f"{prefix}/{site}/results"
    try:
        ids = outbox.put_many(alarms)
        forwarder = hub_forwarder(broker.port, prefix, site, outbox, tmp_path)
        caplog.set_level(logging.WARNING, logger="edge_agent.forwarders.mqtt")
        async with running(forwarder) as task:
            await async_wait_until(
                lambda: outbox.awaiting_count() == len(alarms), what="all published"
            )
            for payload in garbage:
                hub.raw(results_topic, payload)
            for suffix, payload in statuses:
                hub.raw(f"{prefix}/hub/status/{suffix}", payload)
            hub.announce("online")  # whatever the garbage said, one replica is online
            for alarm in healthy:
                hub.answer(alarm)
            confirmation = forwarder.hub_status
            expected = len(garbage) + len(healthy)
            await async_wait_until(
                lambda: (
                    confirmation.results
                    + confirmation.results_invalid
                    + confirmation.results_unknown
                    == expected
                ),
                what="every result message counted",
            )
            await async_wait_until(lambda: forwarder.status.sent == HEALTHY, what="healthy")
            assert not task.done()  # still running
            assert confirmation.results == HEALTHY
            assert forwarder.presence.state == "online"
        # Only what the hub confirmed left the outbox; the rest still awaits, untouched.
        assert [a.id for a in outbox.awaiting()] == ids[HEALTHY:]
        assert outbox.dead_letters() == []
        refused = [r for r in caplog.records if r.getMessage().startswith("Hub result ignored")]
        assert len(refused) == confirmation.results_invalid > 0
        status_refused = [
            r for r in caplog.records if r.getMessage().startswith("Hub status ignored")
        ]
        assert len(status_refused) == confirmation.hub_status_invalid
    finally:
        hub.raw(f"{prefix}/hub/status/hub-a", b"", retain=True)
        hub.close()
        outbox.close()
