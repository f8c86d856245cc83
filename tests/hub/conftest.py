"""Fixtures for the hub's tests: the MaintainX emulator over HTTP, hub files, a running hub
in-process, an MQTT client playing the sites, and PostgreSQL when it can be reached."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.alerts import ALERT_SCHEMA, format_time_ns, make_alert_id, make_event_id
from edge_agent.hub.app import Hub
from edge_agent.hub.config import HubConfig
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker, free_port

T0 = 1_780_000_000 * 1_000_000_000
PG_DSN = os.environ.get("EDGE_AGENT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
KEY_A = "key-site-a"
KEY_B = "key-site-b"


def make_alert(site: str, n: int, event: str = "activated", **overrides: Any) -> dict[str, Any]:
    """A valid alert message for episode ``n`` of ``site``."""
    rule = overrides.pop("rule", f"rule-{n % 50}")
    alert_id = overrides.pop("alert_id", make_alert_id(site, rule, T0 + n))
    time_ns = T0 + n + (1_000_000_000 if event != "activated" else 0)
    message: dict[str, Any] = {
        "schema": ALERT_SCHEMA,
        "site": site,
        "event_id": make_event_id(alert_id, event),
        "alert_id": alert_id,
        "event": event,
        "time": format_time_ns(time_ns),
        "time_ns": time_ns,
        "rule": rule,
        "sensor": "pressure",
        "asset": {"id": f"pump-{n % 3}", "name": "Pump", "maintainx_id": None},
        "value": 9.5,
        "peak": 9.9,
        "limit": 8.0,
        "unit": "bar",
        "priority": "HIGH",
        "notify": True,
        "work_order": {
            "title": f"High pressure on pump {n}",
            "description": "Pressure above 8 bar.",
            "priority": "HIGH",
            "categories": [],
            "assignees": [],
            "due_date": None,
        },
    }
    message.update(overrides)
    return message


class Site:
    """An MQTT client playing one or more sites: publishes alerts, records what comes back."""

    def __init__(self, broker: Broker, client_id: str | None = None) -> None:
        self.received: list[tuple[str, dict[str, Any], bool]] = []
        self._lock = threading.Lock()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"site-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5,
        )
        self.client.on_message = self._on_message
        self.client.max_inflight_messages_set(100)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            body = {"raw": message.payload.decode(errors="replace")}
        with self._lock:
            self.received.append((message.topic, body, bool(message.retain)))

    def subscribe(self, topic: str) -> None:
        result, mid = self.client.subscribe(topic, qos=1)
        assert result == paho.MQTT_ERR_SUCCESS

    def publish(
        self, topic: str, payload: bytes | str | dict[str, Any], *, retain: bool = False
    ) -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=10)
        assert info.is_published()

    def publish_many(self, items: list[tuple[str, bytes]]) -> None:
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in items]
        for info in infos:
            info.wait_for_publish(timeout=30)
            assert info.is_published()

    def results(self) -> list[dict[str, Any]]:
        with self._lock:
            return [body for topic, body, _ in self.received if topic.endswith("/results")]

    def on(self, suffix: str) -> list[dict[str, Any]]:
        with self._lock:
            return [body for topic, body, _ in self.received if topic.endswith(suffix)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait_until(predicate: Callable[[], bool], timeout_s: float = 20.0, what: str = "") -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    assert predicate(), f"timed out waiting for {what or predicate}"


async def async_wait_until(
    predicate: Callable[[], bool], timeout_s: float = 20.0, what: str = ""
) -> None:
    import asyncio

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    assert predicate(), f"timed out waiting for {what or predicate}"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """One emulator per module: two sites, two keys, two organizations, no rate limit."""
    with Emulator(
        keys={KEY_A: [101], KEY_B: [202]}, rate_limit=1_000_000, rate_limiting=False
    ) as mx:
        yield mx


def hub_dict(
    broker: Broker,
    mx_url: str,
    state_dir: Path,
    *,
    hub_id: str = "hub-1",
    group: str | None = None,
    dedup: dict[str, Any] | None = None,
    webhooks: bool = False,
    **hub_extra: Any,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "hub": {"id": hub_id, "group": group or f"g{uuid.uuid4().hex[:8]}", **hub_extra},
        "broker": {
            "host": broker.host,
            "port": broker.port,
            "backoff": {"initial": "100ms", "max": "1s"},
        },
        "sites": {
            "site-a": {"api_key": "${HUB_TEST_KEY_A}", "organization_id": 101},
            "site-b": {"api_key": "${HUB_TEST_KEY_B}", "organization_id": 202},
        },
        "maintainx": {"base_url": mx_url, "timeout": "5s", "rate_limit": 1000000},
        "dedup": dedup or {"backend": "sqlite"},
        "state_dir": str(state_dir),
        "health": {"listen": f"127.0.0.1:{free_port()}"},
    }
    if webhooks:
        data["webhooks"] = {
            "listen": f"127.0.0.1:{free_port()}",
            "secret": "${HUB_TEST_WEBHOOK_SECRET}",
            "public_url": "http://127.0.0.1:1/maintainx/webhooks",
        }
    return data


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_TEST_KEY_A", KEY_A)
    monkeypatch.setenv("HUB_TEST_KEY_B", KEY_B)
    monkeypatch.setenv("HUB_TEST_WEBHOOK_SECRET", "whsec-test")


async def start_hub(data: dict[str, Any], base_dir: Path) -> Hub:
    hub = Hub(HubConfig.model_validate(data), base_dir)
    await hub.start()
    await async_wait_until(lambda: hub.mqtt_connected, 10, "hub connected")
    return hub


@pytest.fixture
async def running_hubs() -> AsyncIterator[list[Hub]]:
    """Hubs a test started; closed at the end."""
    hubs: list[Hub] = []
    yield hubs
    for hub in hubs:
        await hub.close()


def pg_available() -> str | None:
    """None when PostgreSQL answers at PG_DSN, else why not."""
    try:
        import psycopg

        with psycopg.connect(PG_DSN, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return (
            f"PostgreSQL not reachable at {PG_DSN} ({type(exc).__name__}): "
            "start it or set EDGE_AGENT_TEST_PG_DSN"
        )
    return None


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema for one test; dropped afterwards. Skips when PostgreSQL is down."""
    why = pg_available()
    if why is not None:
        pytest.skip(why)
    import psycopg

    schema = f"hubtest_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def subscribe_props() -> Properties:
    return Properties(PacketTypes.SUBSCRIBE)


class ResendingSite(Site):
    """A site as the contract between agent and hub has it: every alert event is published
    again, with the same ids, while no result for it has arrived after ``resend_after_s``
    (the agent's resend, built elsewhere; this is its behaviour in a few lines)."""

    def __init__(self, broker: Broker, site: str, resend_after_s: float = 2.0) -> None:
        super().__init__(broker)
        self.site = site
        self.resend_after_s = resend_after_s
        self.publishes = 0
        self._sent: dict[str, tuple[bytes, float]] = {}  # event id → (payload, last sent)
        self.subscribe(f"edge/v1/{site}/results")

    def send(self, messages: list[dict[str, Any]]) -> None:
        items = []
        now = time.monotonic()
        for message in messages:
            payload = json.dumps(message).encode()
            self._sent[message["event_id"]] = (payload, now)
            items.append((f"edge/v1/{self.site}/alerts", payload))
        self.publishes += len(items)
        self.publish_many(items)

    def answered(self) -> dict[str, str]:
        """event id → the status of its (last) result."""
        return {r["event_id"]: r["status"] for r in self.results() if r.get("event_id")}

    def awaiting(self) -> list[str]:
        answered = self.answered()
        return [event_id for event_id in self._sent if event_id not in answered]

    def resend_due(self) -> int:
        """Publish again what waited longer than ``resend_after_s``; how many were resent."""
        now = time.monotonic()
        due = [
            (event_id, payload)
            for event_id in self.awaiting()
            for payload, sent in [self._sent[event_id]]
            if now - sent >= self.resend_after_s
        ]
        for event_id, payload in due:
            self._sent[event_id] = (payload, now)
        self.publishes += len(due)
        self.publish_many([(f"edge/v1/{self.site}/alerts", payload) for _, payload in due])
        return len(due)

    def run_until(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Resend as an agent does until ``predicate`` holds; fail after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            self.resend_due()
            time.sleep(0.05)
        assert predicate(), f"timed out waiting for {what}"
