"""The reusable MQTT link (the hub's consumer uses it too) and the forwarder factory."""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial
from pathlib import Path

import pytest

from edge_agent.common.mqtt_link import Message, MqttLink
from edge_agent.config.models import SiteConfig
from edge_agent.forwarders import ForwarderConfigError, build_forwarder
from edge_agent.forwarders.mqtt import MqttForwarder
from edge_agent.outbox import Outbox

from .conftest import TunedBroker, async_wait_until


async def test_link_subscribes_and_receives_with_manual_ack(
    broker: TunedBroker, names: tuple[str, str]
) -> None:
    prefix, _ = names
    received: list[Message] = []
    consumer = MqttLink(
        "127.0.0.1",
        broker.port,
        f"hub-{prefix.replace('/', '-')}",
        subscriptions=[(f"{prefix}/+/alerts", 1)],
        on_message=received.append,
        manual_ack=True,
    )
    producer = MqttLink("127.0.0.1", broker.port, f"prod-{prefix.replace('/', '-')}")
    await consumer.start()
    await producer.start()
    try:
        await asyncio.wait_for(consumer.wait_connected(), 10)
        await asyncio.wait_for(producer.wait_connected(), 10)
        await asyncio.wait_for(consumer.wait_subscribed(), 10)
        for n in range(3):
            await asyncio.wait_for(producer.publish(f"{prefix}/s1/alerts", b"%d" % n), 10)
        await async_wait_until(lambda: len(received) == 3, what="3 messages")
        assert [m.payload for m in received] == [b"0", b"1", b"2"]
        assert all(m.qos == 1 and m.topic == f"{prefix}/s1/alerts" for m in received)
        for message in received:
            consumer.ack_message(message)
        assert producer.in_flight == 0
    finally:
        await consumer.close()
        await producer.close()
    # Publishing on a closed link fails at once, never hangs.
    with pytest.raises(Exception, match="not connected"):
        await producer.publish("x/y", b"z")


async def test_a_burst_reaches_the_loop_in_order_once_each(
    broker: TunedBroker, names: tuple[str, str]
) -> None:
    """paho's callbacks reach the loop in bursts (one wake-up per burst, issue 16): every
    PUBACK and every message of a burst arrives, once, in order, and a callback that raises
    drops none of those behind it."""
    prefix, _ = names
    received: list[bytes] = []

    def on_message(message: Message) -> None:
        received.append(message.payload)

    consumer = MqttLink(
        "127.0.0.1",
        broker.port,
        f"burst-c-{prefix.replace('/', '-')}",
        subscriptions=[(f"{prefix}/+/alerts", 1)],
        on_message=on_message,
    )
    producer = MqttLink(
        "127.0.0.1", broker.port, f"burst-p-{prefix.replace('/', '-')}", max_inflight=100
    )
    await consumer.start()
    await producer.start()
    try:
        await asyncio.wait_for(consumer.wait_subscribed(), 10)
        await asyncio.wait_for(producer.wait_connected(), 10)
        count = 2000
        futures = [producer.publish(f"{prefix}/s1/alerts", b"%d" % n) for n in range(count)]
        await asyncio.wait_for(asyncio.gather(*futures), 60)  # every PUBACK came back
        await async_wait_until(lambda: len(received) >= count, 60, "the burst")
        assert received == [b"%d" % n for n in range(count)]
        # A callback queued for the loop that raises: logged, the next ones still run.
        ran: list[int] = []

        def boom() -> None:
            raise RuntimeError("a bug in a callback")

        for call in (partial(ran.append, 1), boom, partial(ran.append, 2)):
            await asyncio.to_thread(consumer._call, call)  # from another thread, as paho
        await async_wait_until(lambda: ran == [1, 2], 10, "both callbacks around the bug")
    finally:
        await consumer.close()
        await producer.close()


def site_config(tmp_path: Path, forwarding: dict[str, object] | None) -> SiteConfig:
    document: dict[str, object] = {"version": 1, "site": {"id": "plant-a"}}
    if forwarding is not None:
        document["forwarding"] = forwarding
    return SiteConfig.model_validate(document)


def test_factory_builds_the_configured_forwarder(tmp_path: Path) -> None:
    with Outbox.open(tmp_path / "outbox", 1_000_000) as outbox:
        config = site_config(tmp_path, {"mode": "mqtt", "mqtt": {"host": "127.0.0.1"}})
        forwarder = build_forwarder(config, outbox, tmp_path, tmp_path)
        assert isinstance(forwarder, MqttForwarder)
        assert forwarder.alerts_topic == "edge/v1/plant-a/alerts"
        assert forwarder.status_topic == "edge/v1/plant-a/status"
        assert forwarder.client_id == "edge-agent-plant-a"
        with pytest.raises(ForwarderConfigError):
            build_forwarder(site_config(tmp_path, None), outbox, tmp_path, tmp_path)


async def test_missing_password_secret_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDGE_TEST_UNSET_PASSWORD", raising=False)
    config = site_config(
        tmp_path,
        {
            "mode": "mqtt",
            "mqtt": {
                "host": "127.0.0.1",
                "username": "agent",
                "password": "${EDGE_TEST_UNSET_PASSWORD}",
            },
        },
    )
    with Outbox.open(tmp_path / "outbox", 1_000_000) as outbox:
        forwarder = build_forwarder(config, outbox, tmp_path, tmp_path)
        # Held, not dead: the supervisor would end the process for a dead forwarder, and
        # systemd would restart it into the same error every few seconds.
        task = asyncio.create_task(forwarder.run())
        try:
            async with asyncio.timeout(10):
                while forwarder.status.holding is None:
                    await asyncio.sleep(0.01)
            assert "EDGE_TEST_UNSET_PASSWORD" in forwarder.status.holding
            assert not task.done()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
