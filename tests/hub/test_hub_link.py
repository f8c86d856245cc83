"""The hub's MQTT link with manual acknowledgements: an unacknowledged message comes back
after a reconnect, a message is acknowledged only on the connection that delivered it, and
an acknowledged one does not come back."""

from __future__ import annotations

import asyncio
import uuid

import paho.mqtt.client as paho

from edge_agent.common.backoff import Backoff
from edge_agent.common.mqtt_link import Message, MqttLink
from tests.conftest import Broker
from tests.hub.conftest import async_wait_until


def _publish(broker: Broker, topic: str, payload: bytes) -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def _link(broker: Broker, client_id: str, topic: str, received: list[Message]) -> MqttLink:
    return MqttLink(
        broker.host,
        broker.port,
        client_id,
        subscriptions=[(topic, 1)],
        on_message=received.append,
        backoff=Backoff(0.05, 0.5),
        session_expiry_s=300,
        manual_ack=True,
    )


async def test_manual_ack_is_per_connection_and_unacked_messages_return(
    mosquitto: Broker,
) -> None:
    received: list[Message] = []
    topic = f"t/{uuid.uuid4().hex[:8]}"
    client_id = f"ack-test-{uuid.uuid4().hex[:8]}"
    link = _link(mosquitto, client_id, topic, received)
    await link.start()
    try:
        await asyncio.wait_for(link.wait_subscribed(), 20)
        await asyncio.to_thread(_publish, mosquitto, topic, b"first")
        await async_wait_until(lambda: len(received) == 1, 10, "first delivery")
        first = received[0]
        assert link.is_current(first)
    finally:
        await link.close()
    assert not link.is_current(first)
    link.ack_message(first)  # its connection is gone: nothing to acknowledge on

    # Not acknowledged: the broker delivers it again on the next connection of the session.
    link = _link(mosquitto, client_id, topic, received)
    await link.start()
    try:
        await async_wait_until(lambda: len(received) == 2, 20, "redelivery")
        again = received[1]
        assert again.payload == b"first" and link.is_current(again)
        link.ack_message(again)
        await asyncio.to_thread(_publish, mosquitto, topic, b"second")
        await async_wait_until(lambda: len(received) == 3, 20, "second message")
        link.ack_message(received[2])
    finally:
        await link.close()

    # Both acknowledged: a new connection of the session gets only what comes next.
    link = _link(mosquitto, client_id, topic, received)
    await link.start()
    try:
        await asyncio.wait_for(link.wait_subscribed(), 20)
        await asyncio.to_thread(_publish, mosquitto, topic, b"third")
        await async_wait_until(lambda: len(received) == 4, 20, "third message")
        assert [m.payload for m in received] == [b"first", b"first", b"second", b"third"]
    finally:
        await link.close()
