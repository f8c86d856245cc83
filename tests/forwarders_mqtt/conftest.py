"""Fixtures for the MQTT forwarder tests: a tuned mosquitto, a persistent subscriber, helpers.

Every test uses its own topic prefix and site id, so tests never see each other's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.config.models import Mqtt
from edge_agent.forwarders.mqtt import MqttForwarder
from tests.conftest import Broker, free_port, mosquitto_binary, wait_for_port


@dataclass
class TunedBroker(Broker):
    """The shared fixture's broker plus what these tests need: the state saved every second
    (a SIGKILLed broker keeps the subscriber's session), TCP_NODELAY, optional ACL lines."""

    acl: str | None = None
    extra: str = ""

    def start(self) -> None:
        import subprocess

        conf = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
            "set_tcp_nodelay true",
        ]
        if os.geteuid() == 0:
            # mosquitto started as root drops to the `mosquitto` user, which cannot enter
            # pytest's 0700 temporary directories to read the ACL or save its state.
            lines.append("user root")
        if self.acl is not None:
            acl_file = self.workdir / "acl"
            acl_file.write_text(self.acl)
            lines.append(f"acl_file {acl_file}")
        conf.write_text("\n".join(lines) + "\n" + self.extra)
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "mosquitto.log").open("ab"),
        )
        wait_for_port(self.host, self.port)


def make_broker(tmp_path: Path, acl: str | None = None, extra: str = "") -> TunedBroker:
    broker = TunedBroker(port=free_port(), workdir=tmp_path / "mosquitto", acl=acl, extra=extra)
    broker.workdir.mkdir()
    try:
        broker.start()
    except BaseException:
        broker.kill()
        raise
    return broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TunedBroker]:
    broker = make_broker(tmp_path)
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def names() -> tuple[str, str]:
    """A unique (topic prefix, site id) for this test."""
    tag = uuid.uuid4().hex[:10]
    return f"t{tag}/v1", f"site-{tag}"


def wait_until(
    predicate: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s}s")
        time.sleep(0.02)


@dataclass
class Subscriber:
    """A QoS 1 subscriber with a persistent session that reconnects by itself."""

    port: int
    topic: str
    client_id: str = field(default_factory=lambda: f"sub-{uuid.uuid4().hex[:8]}")
    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    subscribed: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _client: paho.Client | None = None

    def start(self) -> Subscriber:
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv5
        )
        client.reconnect_delay_set(1, 1)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = lambda *args: self.subscribed.set()
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        client.connect(
            "127.0.0.1", self.port, keepalive=5, clean_start=False, properties=properties
        )
        client.loop_start()
        self._client = client
        assert self.subscribed.wait(10), "subscriber did not subscribe"
        return self

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        if not rc.is_failure:
            client.subscribe(self.topic, qos=1)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def payloads(self, topic: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(p) for t, p, _ in self.messages if topic is None or t == topic]

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None


@pytest.fixture
def subscribe() -> Iterator[Callable[[int, str], Subscriber]]:
    started: list[Subscriber] = []

    def start(port: int, topic: str) -> Subscriber:
        subscriber = Subscriber(port, topic).start()
        started.append(subscriber)
        return subscriber

    yield start
    for subscriber in started:
        subscriber.stop()


def events(site: str, count: int, start: int = 0) -> list[dict[str, Any]]:
    """Alarm-event-shaped payloads with increasing event ids."""
    return [
        {
            "schema": "edge-agent/alert@1",
            "site": site,
            "event_id": f"ev-{n:06d}",
            "alert_id": f"al-{n // 2:06d}",
            "event": "activated",
            "seq": n,
        }
        for n in range(start, start + count)
    ]


def first_occurrences(payloads: list[dict[str, Any]]) -> list[int]:
    seen: set[str] = set()
    order: list[int] = []
    for payload in payloads:
        if payload["event_id"] not in seen:
            seen.add(payload["event_id"])
            order.append(payload["seq"])
    return order


async def async_wait_until(
    predicate: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition"
) -> None:
    """``wait_until`` for tests whose forwarder runs on the same event loop."""
    import asyncio

    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s}s")
        await asyncio.sleep(0.02)


def mqtt_config(
    port: int, prefix: str, *, initial: str = "100ms", most: str = "1s", **extra: Any
) -> Mqtt:
    """The forwarder's settings for a test broker, reconnecting fast. Confirmation by the
    broker's PUBACK unless ``confirm="hub"`` is given: most of these tests have no hub."""
    return Mqtt.model_validate(
        {
            "host": "127.0.0.1",
            "port": port,
            "topic_prefix": prefix,
            "backoff": {"initial": initial, "max": most},
            "confirm": "broker",
            **extra,
        }
    )


@contextlib.asynccontextmanager
async def running(forwarder: MqttForwarder) -> AsyncIterator[asyncio.Task[None]]:
    """The forwarder running as a task; cancelled and closed on the way out."""
    task = asyncio.create_task(forwarder.run(), name="forwarder-under-test")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await forwarder.close()
