"""A link that swallows one PUBLISH and then passes everything again (found by the fault
campaign: a proxy blackholed for 3 s while an alert was sent). The TCP connection stays
up and answers pings, so nothing ever ends it; QoS 1 resends only on a new connection,
and the alert stayed unacknowledged in flight for good. The link now ends a connection
whose PUBACK is overdue (1.5 keepalives), and the message fails over to a new one."""

from __future__ import annotations

import asyncio
import time

import pytest

from edge_agent.common.mqtt_link import Message, MqttDisconnected, MqttLink
from tests.chaos.proxy import FaultProxy
from tests.conftest import Broker

KEEPALIVE_S = 2


async def test_a_swallowed_publish_ends_its_connection_and_is_sent_again(
    mosquitto: Broker,
) -> None:
    proxy = FaultProxy("mqtt", mosquitto.port)
    await proxy.start()
    received: list[Message] = []
    watcher = MqttLink(
        "127.0.0.1",
        mosquitto.port,
        "swallow-watcher",
        subscriptions=[("swallow/#", 1)],
        on_message=received.append,
    )
    link = MqttLink("127.0.0.1", proxy.port, "swallow-sender", keepalive_s=KEEPALIVE_S)
    await watcher.start()
    await link.start()
    try:
        await asyncio.wait_for(watcher.wait_subscribed(), 10)
        await asyncio.wait_for(link.wait_connected(), 10)
        proxy.set_mode("blackhole")
        swallowed = link.publish("swallow/alerts", b"lost on the way", qos=1)
        await asyncio.sleep(0.5)
        proxy.set_mode("pass")  # the same connection carries traffic again
        with pytest.raises(MqttDisconnected, match="no PUBACK"):
            await asyncio.wait_for(swallowed, 30)  # 1.5 keepalives and a check, here ~4 s
        await asyncio.wait_for(link.wait_connected(), 10)
        assert link.connects == 2
        await asyncio.wait_for(link.publish("swallow/alerts", b"sent again", qos=1), 10)
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert [m.payload for m in received] == [b"sent again"]
    finally:
        await link.close()
        await watcher.close()
        await proxy.close()
