"""Delivery confirmed by the hub (``confirm: hub``), against a real mosquitto with a scripted
hub: an MQTT client that receives the alerts, answers on the results topic when told to and
announces its presence like a hub replica. The clock of the resend schedule is injected:
ten minutes of hub absence take no ten minutes."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.forwarders.hub_confirm import result_timeout_s
from edge_agent.forwarders.mqtt import MqttForwarder
from edge_agent.outbox import Outbox

from .conftest import TunedBroker, async_wait_until, events, mqtt_config, running


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedHub:
    """Receives ``{prefix}/+/alerts``; answers and announces only when the test says so."""

    def __init__(self, port: int, prefix: str, site: str) -> None:
        self.prefix, self.site = prefix, site
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"hub-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5,
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(f"{prefix}/+/alerts", qos=1)
        assert self._subscribed.wait(10)

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.received.append(json.loads(message.payload))

    def copies(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.received)

    def distinct(self) -> set[str]:
        return {p["event_id"] for p in self.copies()}

    def answer(self, payload: dict[str, Any], status: str = "ok", **extra: Any) -> None:
        body = {
            "site": self.site,
            "event_id": payload["event_id"],
            "alert_id": payload["alert_id"],
            "status": status,
            **extra,
        }
        self.raw(f"{self.prefix}/{self.site}/results", json.dumps(body).encode())

    def raw(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)

    def announce(self, state: str, replica: str = "hub-a") -> None:
        body = {"state": state, "group": "g", "replica": replica, "time": "2026-12-04T00:00:00Z"}
        self.raw(f"{self.prefix}/hub/status/{replica}", json.dumps(body).encode(), retain=True)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def outbox(tmp_path: Path) -> Any:
    store = Outbox.open(tmp_path / "outbox", 50_000_000)
    yield store
    store.close()


@pytest.fixture
def hub(broker: TunedBroker, names: tuple[str, str]) -> Any:
    prefix, site = names
    scripted = ScriptedHub(broker.port, prefix, site)
    yield scripted
    scripted.close()


def alarms(site: str, count: int) -> list[dict[str, Any]]:
    """One event per alert (``events`` pairs two events per alert)."""
    return [{**e, "alert_id": f"al-{e['seq']:06d}"} for e in events(site, count)]


def hub_forwarder(
    port: int,
    prefix: str,
    site: str,
    outbox: Outbox,
    tmp_path: Path,
    clock: FakeClock | None = None,
    **extra: Any,
) -> MqttForwarder:
    settings: dict[str, Any] = {"confirm": "hub", "result_timeout": "60s", **extra}
    return MqttForwarder(
        mqtt_config(port, prefix, **settings),
        site,
        outbox,
        tmp_path,
        idle_poll_s=0.01,
        clock=clock or FakeClock(),
    )


def test_store_keeps_awaiting_items_across_reopen(tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    with Outbox.open(directory, 10_000_000) as outbox:
        ids = outbox.put_many(alarms("s", 5))
        outbox.lease(5)
        assert outbox.mark_awaiting(ids[:3], sent_at=100.0) == 3
        assert outbox.lease(10) == []  # leased ones are still held...
        outbox.release(ids)
        assert [i.id for i in outbox.lease(10)] == ids[3:]  # ...awaiting ones are never leased
        assert outbox.stats().depth == 2
    with Outbox.open(directory, 10_000_000) as outbox:  # SIGKILL-equivalent: leases forgotten
        awaiting = outbox.awaiting()
        assert [a.id for a in awaiting] == ids[:3]
        assert awaiting[0].first_sent_at == 100.0 and awaiting[0].sends == 1
        outbox.note_resent([ids[0]], sent_at=160.0)
        assert outbox.awaiting()[0].last_sent_at == 160.0 and outbox.awaiting()[0].sends == 2
        assert outbox.confirm_awaiting([ids[0]]) == 1
        assert outbox.dead_letter_awaiting(ids[1], "rejected by the hub: bad_message")
        assert [d.reason for d in outbox.dead_letters()] == ["rejected by the hub: bad_message"]
        assert outbox.awaiting_count() == 1
        assert outbox.requeue_awaiting() == 1
        assert [i.id for i in outbox.peek(10)] == [ids[2], *ids[3:]]  # its old place
        assert outbox.awaiting_stats().count == 0


async def test_an_event_leaves_the_outbox_only_on_the_hubs_result(
    broker: TunedBroker, names: tuple[str, str], outbox: Outbox, hub: ScriptedHub, tmp_path: Path
) -> None:
    prefix, site = names
    sent = alarms(site, 3)
    ids = outbox.put_many(sent)
    forwarder = hub_forwarder(broker.port, prefix, site, outbox, tmp_path)
    async with running(forwarder):
        await async_wait_until(lambda: len(hub.distinct()) == 3, what="3 published")
        # PUBACKed, not confirmed: still on disk, awaiting the hub.
        await async_wait_until(lambda: outbox.awaiting_count() == 3, what="3 awaiting")
        assert outbox.stats().depth == 0 and forwarder.status.sent == 0
        hub.answer(sent[0], "ok", work_order_id=7)
        hub.answer(sent[1], "parked")
        # A rejection may come without an alert id (the hub could not read it).
        hub.answer(
            {**sent[2], "alert_id": None},
            "rejected",
            reason="bad_message",
            detail="time out of range",
        )
        await async_wait_until(lambda: outbox.awaiting_count() == 0, what="all answered")
        await async_wait_until(lambda: forwarder.status.sent == 2, what="2 confirmed")
        dead = outbox.dead_letters()
        assert [d.id for d in dead] == [ids[2]]
        assert "bad_message" in dead[0].reason and "time out of range" in dead[0].reason
        assert forwarder.status.hub.rejected_by_hub == 1


async def test_a_rejection_after_parked_is_counted_and_logged_not_silent(
    broker: TunedBroker,
    names: tuple[str, str],
    outbox: Outbox,
    hub: ScriptedHub,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``parked`` is final for the agent; a hub that later finds the event poison answers
    ``rejected`` to nobody waiting. The agent cannot dead-letter it (the event left its
    outbox), but says so: counted and logged, with the hub's reason."""
    prefix, site = names
    sent = alarms(site, 1)
    outbox.put_many(sent)
    forwarder = hub_forwarder(broker.port, prefix, site, outbox, tmp_path)
    async with running(forwarder):
        await async_wait_until(lambda: outbox.awaiting_count() == 1, what="awaiting")
        hub.answer(sent[0], "parked")
        await async_wait_until(lambda: forwarder.status.sent == 1, what="parked is final")
        hub.answer(sent[0], "ok")  # a copy's answer: usual, quiet
        hub.answer(sent[0], "rejected", reason="poison", detail="RuntimeError: boom")
        status = forwarder.status.hub
        await async_wait_until(lambda: status.results_unknown == 2, what="both unawaited")
        assert status.rejected_unawaited == 1 and status.rejected_by_hub == 0
    warnings = [r for r in caplog.records if "no longer awaits" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].reason == "rejected by the hub: poison: RuntimeError: boom"  # type: ignore[attr-defined]
    assert outbox.dead_letters() == []


async def test_no_resend_storm_while_the_hub_is_away_ten_minutes(
    broker: TunedBroker, names: tuple[str, str], outbox: Outbox, hub: ScriptedHub, tmp_path: Path
) -> None:
    prefix, site = names
    n = 20
    sent = alarms(site, n)
    outbox.put_many(sent)
    clock = FakeClock()
    forwarder = hub_forwarder(broker.port, prefix, site, outbox, tmp_path, clock=clock)
    async with running(forwarder):
        await async_wait_until(lambda: len(hub.copies()) == n, what="first publish")
        await async_wait_until(lambda: outbox.awaiting_count() == n, what="all awaiting")
        # Presence unknown (no hub status ever seen): resend on the timeout with backoff.
        # In 10 simulated minutes: at 60 s, 60+120 s and 60+120+240 s, nothing more.
        expected_sends = 1 + sum(
            1 for k in range(10) if sum(result_timeout_s(i, 60, 600) for i in range(k + 1)) <= 600
        )
        assert expected_sends == 4
        for _ in range(600):  # one simulated second at a time
            clock.now += 1.0
            await asyncio.sleep(0.002)
        await async_wait_until(lambda: len(hub.copies()) == n * expected_sends, what="resends")
        await asyncio.sleep(0.2)  # nothing more comes: checked below
        assert len(hub.copies()) == n * expected_sends
        assert forwarder.status.hub.hub_presence == "unknown"
        assert forwarder.status.hub.summary == "hub presence unknown"

        # Every replica says offline: hold, however long it stays away.
        hub.announce("offline")
        await async_wait_until(lambda: forwarder.presence.state == "offline", what="offline")
        before = len(hub.copies())
        for _ in range(600):
            clock.now += 1.0
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.2)
        assert len(hub.copies()) == before  # not a single resend in 10 minutes
        await async_wait_until(
            lambda: bool(forwarder.status.hub.readiness_reasons), what="readiness says so"
        )
        assert "no hub is online" in forwarder.status.hub.readiness_reasons[0]
        assert outbox.note("hub") == {
            "state": "offline",
            "replicas": {"hub-a": "offline"},
            "time": outbox.note("hub")["time"],  # type: ignore[index]
        }
        # A replica comes online: everything that awaits goes at once (no clock move).
        hub.announce("online")
        await async_wait_until(
            lambda: len(hub.copies()) == before + n, what="resent at once on online"
        )
        for payload in sent:
            hub.answer(payload)
        await async_wait_until(lambda: outbox.awaiting_count() == 0, what="confirmed")
    hub.raw(f"{prefix}/hub/status/hub-a", b"", retain=True)


async def test_order_per_alert_and_resent_after_restart(
    broker: TunedBroker, names: tuple[str, str], hub: ScriptedHub, tmp_path: Path
) -> None:
    prefix, site = names
    activated, cleared = events(site, 2)  # one alert, two events
    directory = tmp_path / "outbox"
    outbox = Outbox.open(directory, 10_000_000)
    outbox.put_many([activated, cleared])
    clock = FakeClock()
    forwarder = hub_forwarder(broker.port, prefix, site, outbox, tmp_path, clock=clock)
    async with running(forwarder):
        await async_wait_until(lambda: outbox.awaiting_count() == 1, what="first awaiting")
        await asyncio.sleep(0.1)
        # The second event of the alert waits for the hub's answer to the first.
        assert hub.distinct() == {activated["event_id"]}
        assert forwarder.status.hub.held_for_order == 1
    outbox.close()  # the agent stops (or is killed): the awaiting state is on disk

    outbox = Outbox.open(directory, 10_000_000)
    try:
        clock2 = FakeClock()
        forwarder = hub_forwarder(broker.port, prefix, site, outbox, tmp_path, clock=clock2)
        copies = len(hub.copies())
        async with running(forwarder):
            await async_wait_until(lambda: forwarder.status.connected, what="connected")
            await asyncio.sleep(0.1)
            assert len(hub.copies()) == copies  # not due yet: resent on its schedule
            clock2.now += 61
            await async_wait_until(lambda: len(hub.copies()) == copies + 1, what="resent")
            assert hub.copies()[-1] == activated  # the same bytes, the same ids
            hub.answer(activated)
            await async_wait_until(
                lambda: cleared["event_id"] in hub.distinct(), what="second event after first"
            )
            hub.answer(cleared)
            await async_wait_until(
                lambda: outbox.awaiting_count() == 0 and outbox.stats().depth == 0,
                what="both confirmed",
            )
        first_seen = list(dict.fromkeys(p["event_id"] for p in hub.copies()))
        assert first_seen == [activated["event_id"], cleared["event_id"]]
    finally:
        outbox.close()


async def test_confirm_broker_requeues_what_a_hub_never_confirmed(
    broker: TunedBroker, names: tuple[str, str], outbox: Outbox, hub: ScriptedHub, tmp_path: Path
) -> None:
    prefix, site = names
    ids = outbox.put_many(alarms(site, 3))
    outbox.lease(3)
    outbox.mark_awaiting(ids)
    forwarder = MqttForwarder(mqtt_config(broker.port, prefix), site, outbox, tmp_path)
    async with running(forwarder):
        await async_wait_until(lambda: forwarder.status.sent == 3, what="3 acked by PUBACK")
    assert outbox.awaiting_count() == 0 and outbox.stats().depth == 0


def test_outbox_status_shows_queued_awaiting_and_the_hub(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_agent.cli import main

    state = tmp_path / "state"
    site_file = tmp_path / "site.yaml"
    site_file.write_text(f"version: 1\nsite:\n  id: plant-a\nstorage:\n  path: {state}\n")
    with Outbox.open(state / "outbox", 256_000_000) as outbox:
        ids = outbox.put_many(alarms("plant-a", 4))
        outbox.lease(3)
        outbox.mark_awaiting(ids[:3], sent_at=time.time() - 90)
        outbox.set_note("hub", {"state": "offline", "replicas": {}, "time": time.time() - 30})
    assert main(["outbox", str(site_file), "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["depth"] == 1 and status["dead"] == 0
    assert status["awaiting_hub"] == 3
    assert 89 <= status["awaiting_hub_oldest_age_s"] < 200
    assert status["hub"]["state"] == "offline"
    assert main(["outbox", str(site_file), "status"]) == 0
    text = capsys.readouterr().out
    assert "sent, awaiting the hub: 3 event(s), oldest sent 1m" in text
    assert "offline for 3" in text and "holds its events" in text


async def test_metrics_and_readiness_name_the_hub_state(
    broker: TunedBroker, names: tuple[str, str], outbox: Outbox, hub: ScriptedHub, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from edge_agent.service.metrics import AgentCollector
    from edge_agent.service.retired_counters import RetiredCounters

    prefix, site = names
    outbox.put_many(alarms(site, 2))
    forwarder = hub_forwarder(broker.port, prefix, site, outbox, tmp_path)
    agent: Any = SimpleNamespace(forwarder=forwarder, retired=RetiredCounters())
    collector = AgentCollector(agent, SimpleNamespace())
    async with running(forwarder):
        await async_wait_until(lambda: outbox.awaiting_count() == 2, what="2 awaiting")
        hub.announce("offline")
        await async_wait_until(lambda: forwarder.status.hub.held_for_hub, what="held")
        families = {f.name: f for f in collector._hub()}
    assert families["edge_agent_outbox_awaiting_hub"].samples[0].value == 2
    assert families["edge_agent_outbox_held_for_hub"].samples[0].value == 1
    presence = {s.labels["state"]: s.value for s in families["edge_agent_hub_presence"].samples}
    assert presence == {"unknown": 0, "online": 0, "offline": 1}
    hub.raw(f"{prefix}/hub/status/hub-a", b"", retain=True)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"result_timeout": "2m", "result_timeout_max": "1m"}, "must not be shorter"),
        ({"result_timeout": "500ms"}, "between 1s and 24h"),
        ({"result_timeout_max": "2d"}, "at most 24h"),
        ({"confirm": "puback"}, "'hub' or 'broker'"),
        ({"max_awaiting": 0}, "greater than or equal to 1"),
    ],
)
def test_confirmation_settings_are_validated(settings: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    from edge_agent.config.models import Mqtt

    with pytest.raises(ValidationError, match=message):
        Mqtt.model_validate({"host": "broker", **settings})
    defaults = Mqtt.model_validate({"host": "broker"})
    assert defaults.confirm == "hub" and defaults.max_awaiting == 100
    assert (defaults.result_timeout, defaults.result_timeout_max) == (60 * 10**9, 600 * 10**9)


def test_awaiting_state_survives_sigkill_and_is_resent_after_restart(
    broker: TunedBroker, names: tuple[str, str], hub: ScriptedHub, tmp_path: Path
) -> None:
    import signal

    from .conftest import wait_until
    from .test_faults import close_pipes, start_agent

    prefix, site = names
    sent = alarms(site, 20)
    directory = tmp_path / "state" / "outbox"
    with Outbox.open(directory, 50_000_000) as outbox:
        ids = outbox.put_many(sent)
    config = {
        "host": "127.0.0.1",
        "port": broker.port,
        "topic_prefix": prefix,
        "confirm": "hub",
        "result_timeout": "1s",
        "result_timeout_max": "2s",
        "backoff": {"initial": "100ms", "max": "1s"},
    }

    def on_disk() -> list[int]:
        with Outbox.open(directory, 50_000_000) as store:
            return [a.id for a in store.awaiting()]

    agent = start_agent(directory, site, config)
    try:
        wait_until(lambda: on_disk() == ids, what="20 awaiting on disk")
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
        close_pipes(agent)
        assert on_disk() == ids  # nothing confirmed by the broker's PUBACK alone
        # Half are answered while the agent is down: its session keeps the results.
        for payload in sent[:10]:
            hub.answer(payload)
        copies = len(hub.copies())
        agent = start_agent(directory, site, config)
        # The other half is published again on its schedule, then answered.
        wait_until(lambda: len(hub.copies()) >= copies + 10, what="resent after the restart")
        for payload in sent[10:]:
            hub.answer(payload)
        wait_until(lambda: on_disk() == [], what="all confirmed")
        with Outbox.open(directory, 50_000_000) as store:
            assert store.stats().depth == 0 and store.dead_letters() == []
        assert hub.distinct() == {p["event_id"] for p in sent}
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=10) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        close_pipes(agent)
