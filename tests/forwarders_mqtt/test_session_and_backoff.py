"""What the broker sees of the link: protocol version, persistent session, credentials,
the bounded in-flight window, and reconnect attempts paced by a capped, jittered backoff."""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from edge_agent.common.backoff import Backoff
from edge_agent.common.mqtt_link import Message, MqttLink
from edge_agent.config.models import Mqtt
from edge_agent.forwarders.mqtt import MqttForwarder
from edge_agent.outbox import Outbox
from tests.conftest import free_port

from .conftest import TunedBroker, async_wait_until, events, make_broker, mqtt_config, running


def config(port: int, prefix: str, **extra: Any) -> Mqtt:
    return mqtt_config(port, prefix, initial="50ms", most="200ms", **extra)


def connect_lines(broker: TunedBroker, client_id: str) -> list[str]:
    """mosquitto's "New client connected ... as ID (pP, cC, kK)" lines for one client."""
    text = (broker.workdir / "mosquitto.log").read_text(errors="replace")
    return re.findall(rf"as {re.escape(client_id)} \((p\d+, c\d+), k\d+", text)


@pytest.mark.parametrize(("protocol", "seen"), [(None, "p5, c0"), ("3.1.1", "p2, c0")])
async def test_protocol_and_persistent_session_as_the_broker_sees_them(
    broker: TunedBroker,
    names: tuple[str, str],
    tmp_path: Path,
    protocol: str | None,
    seen: str,
) -> None:
    # p5 = MQTT 5 (the default), p2 = 3.1.1; c0 = no clean start: a persistent session.
    prefix, site = names
    extra = {"protocol": protocol} if protocol else {}
    with Outbox.open(tmp_path / "outbox", 1_000_000) as outbox:
        outbox.put_many(events(site, 3))
        forwarder = MqttForwarder(config(broker.port, prefix, **extra), site, outbox, tmp_path)
        async with running(forwarder):
            await async_wait_until(lambda: outbox.stats().depth == 0, what="drained")
    await async_wait_until(lambda: bool(connect_lines(broker, forwarder.client_id)), what="log")
    assert set(connect_lines(broker, forwarder.client_id)) == {seen}


async def test_session_keeps_messages_sent_while_the_link_was_away(
    broker: TunedBroker, names: tuple[str, str]
) -> None:
    """The hub's consumer: QoS 1 messages published while it was down arrive on return."""
    prefix, _ = names
    client_id = f"hub-{prefix.replace('/', '-')}"
    received: list[Message] = []

    def consumer() -> MqttLink:
        return MqttLink(
            "127.0.0.1",
            broker.port,
            client_id,
            subscriptions=[(f"{prefix}/+/alerts", 1)],
            on_message=received.append,
        )

    producer = MqttLink("127.0.0.1", broker.port, f"prod-{client_id}")
    first = consumer()
    await first.start()
    await producer.start()
    try:
        await asyncio.wait_for(first.wait_subscribed(), 10)
        await first.close()
        await asyncio.wait_for(producer.wait_connected(), 10)
        for n in range(5):
            await asyncio.wait_for(producer.publish(f"{prefix}/s1/alerts", b"%d" % n), 10)
        assert received == []
        second = consumer()
        await second.start()
        try:
            await async_wait_until(lambda: len(received) == 5, what="queued messages")
        finally:
            await second.close()
    finally:
        await producer.close()
    assert [m.payload for m in received] == [b"0", b"1", b"2", b"3", b"4"]


async def test_username_and_password_from_a_secret_file(
    tmp_path: Path, names: tuple[str, str], subscribe: Any
) -> None:
    prefix, site = names
    passwords = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), "agent", "s3cret-pass"],
        check=True,
        capture_output=True,
    )
    broker = make_broker(
        tmp_path,
        extra=f"allow_anonymous false\npassword_file {passwords}\n",
    )
    (tmp_path / "right.pw").write_text("s3cret-pass\n")
    (tmp_path / "wrong.pw").write_text("not-the-password\n")
    outbox = Outbox.open(tmp_path / "outbox", 1_000_000)
    try:
        outbox.put_many(events(site, 5))
        wrong = MqttForwarder(
            config(broker.port, prefix, username="agent", password="file:wrong.pw"),
            site,
            outbox,
            tmp_path,
        )
        async with running(wrong):
            await async_wait_until(
                lambda: wrong._link is not None and wrong._link.connect_attempts >= 2,
                what="refused attempts",
            )
            assert not wrong.status.connected
            assert "refused" in (wrong._link.last_error or "")
        assert outbox.stats().depth == 5  # nothing lost while refused

        right = MqttForwarder(
            config(broker.port, prefix, username="agent", password="file:right.pw"),
            site,
            outbox,
            tmp_path,
        )
        async with running(right):
            await async_wait_until(lambda: outbox.stats().depth == 0, what="drained")
            await async_wait_until(lambda: right.status.sent == 5, what="5 counted")
    finally:
        outbox.close()
        broker.kill()
    log = (broker.workdir / "mosquitto.log").read_text(errors="replace")
    assert "s3cret-pass" not in log and "not-the-password" not in log


async def test_in_flight_never_exceeds_the_window(
    broker: TunedBroker, names: tuple[str, str], tmp_path: Path
) -> None:
    prefix, site = names
    window = 7
    with Outbox.open(tmp_path / "outbox", 10_000_000) as outbox:
        forwarder = MqttForwarder(
            config(broker.port, prefix, inflight=window), site, outbox, tmp_path
        )
        peaks: list[int] = []
        async with running(forwarder):
            await async_wait_until(lambda: forwarder.status.connected, what="connected")
            link = forwarder._link
            assert link is not None
            publish = link.publish

            def counting_publish(*args: Any, **kwargs: Any) -> Any:
                future = publish(*args, **kwargs)
                peaks.append(link.in_flight)  # awaiting PUBACK, this one included
                return future

            link.publish = counting_publish  # type: ignore[method-assign]
            outbox.put_many(events(site, 300))
            forwarder.wake()
            await async_wait_until(lambda: outbox.stats().depth == 0, what="drained")
        assert len(peaks) >= 300
        assert max(peaks) == window  # the window is used, and never exceeded


async def test_wake_sends_at_once_despite_a_long_idle_poll(
    broker: TunedBroker, names: tuple[str, str], tmp_path: Path
) -> None:
    prefix, site = names
    with Outbox.open(tmp_path / "outbox", 1_000_000) as outbox:
        forwarder = MqttForwarder(
            config(broker.port, prefix), site, outbox, tmp_path, idle_poll_s=3600.0
        )
        async with running(forwarder):
            await async_wait_until(lambda: forwarder.status.connected, what="connected")
            await asyncio.sleep(0.2)  # the drain loop is now in its (hour-long) idle wait
            outbox.put(events(site, 1)[0])
            forwarder.wake()
            await async_wait_until(lambda: forwarder.status.sent == 1, what="woken send")


class RecordingBackoff(Backoff):
    """A real Backoff that remembers every delay it handed out."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        super().__init__(initial_s, max_s, random.Random(11))
        self.delays: list[float] = []

    def next_delay(self) -> float:
        delay = super().next_delay()
        self.delays.append(delay)
        return delay


async def test_no_reconnect_storm_while_the_broker_is_down() -> None:
    port = free_port()  # a closed loopback port: every attempt is refused at once
    backoff = RecordingBackoff(0.05, 0.2)
    link = MqttLink("127.0.0.1", port, "storm-check", backoff=backoff)
    await link.start()
    started = time.monotonic()
    try:
        await asyncio.sleep(1.5)
        attempts = link.connect_attempts
        elapsed = time.monotonic() - started
    finally:
        await link.close()
    assert not link.connected
    # Retrying, but paced: a refused connect takes well under a millisecond, so without the
    # backoff this window would hold thousands of attempts; with it, about one per 0.1 s.
    assert 3 <= attempts <= 60
    assert len(backoff.delays) in (attempts - 1, attempts)
    assert all(0.0 <= d <= 0.2 for d in backoff.delays)
    assert len(set(backoff.delays)) == len(backoff.delays)  # jittered, not a fixed step
    assert sum(backoff.delays[: attempts - 1]) <= elapsed  # each delay was really waited


def test_reconnect_backoff_is_capped_at_60_s_by_default(tmp_path: Path) -> None:
    link = MqttLink.from_config(Mqtt.model_validate({"host": "127.0.0.1"}), "cap", tmp_path)
    backoff = link._backoff
    assert (backoff.initial_s, backoff.max_s) == (0.5, 60.0)
    delays = [backoff.next_delay() for _ in range(200)]  # 2**200 × 0.5 s without the cap
    assert max(delays) <= 60.0
    assert backoff.ceiling() == 60.0
    assert max(delays[-100:]) > 30.0  # it does reach the cap region
    backoff.reset()
    assert backoff.ceiling() == 0.5  # and starts low again after a success


async def test_an_unexpected_connect_error_is_retried_not_fatal(
    broker: TunedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_new_client = MqttLink._new_client
    failures: list[int] = []

    def flaky_new_client(self: MqttLink) -> Any:
        if not failures:
            failures.append(1)
            raise RuntimeError("a paho surprise")
        return real_new_client(self)

    monkeypatch.setattr(MqttLink, "_new_client", flaky_new_client)
    link = MqttLink("127.0.0.1", broker.port, "surprise", backoff=Backoff(0.01, 0.05))
    await link.start()
    try:
        await asyncio.wait_for(link.wait_connected(), 10)
    finally:
        await link.close()
    assert failures == [1] and link.connect_attempts == 2


async def test_cancel_is_not_lost_when_a_wake_comes_at_the_same_moment(
    broker: TunedBroker, names: tuple[str, str], tmp_path: Path
) -> None:
    """On Python 3.11 ``asyncio.wait_for`` swallows a cancel that arrives as the awaited
    event fires; the drain loop would then never stop (the service's shutdown hangs)."""
    prefix, site = names
    with Outbox.open(tmp_path / "outbox", 1_000_000) as outbox:
        forwarder = MqttForwarder(
            config(broker.port, prefix), site, outbox, tmp_path, idle_poll_s=3600.0
        )
        for _ in range(3):
            task = asyncio.create_task(forwarder.run())
            await async_wait_until(lambda: forwarder.status.connected, what="connected")
            await asyncio.sleep(0.1)  # in the idle wait
            forwarder.wake()
            task.cancel()  # in the same turn of the loop
            done, _ = await asyncio.wait({task}, timeout=10)
            assert done == {task}, "the cancel was swallowed: run() goes on"
            assert task.cancelled()
            await forwarder.close()
