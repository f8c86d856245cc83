"""Subscribe mode's delivery against a real asyncua server: publish responses go to the
source's own callback (never asyncua's per-item events), a stalled sink loses the oldest
changes (counted), never the latest, and the swap of asyncua's callback fails loudly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
from asyncua import ua
from asyncua.client.client import Client

from edge_agent.config.models import Sensor
from edge_agent.readings import Quality, Reading
from edge_agent.simulators.opcua import OpcUaSimulator
from edge_agent.sources.opcua.source import _DataChangeHandler

from .conftest import connection, make_source, running, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

NODES = 300  # the queue holds max(1000, 4 × sensors) = 1,200 items: four responses


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[OpcUaSimulator]:
    simulator = OpcUaSimulator(nodes=NODES)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()


async def write_round(sim: OpcUaSimulator, number: int) -> None:
    """Every bench node i to ``number * 1000 + i``."""
    for index in range(NODES):
        await sim.set_bench_value(index, float(number * 1000 + index))


async def test_a_stalled_sink_loses_the_oldest_changes_never_the_latest(
    sim: OpcUaSimulator,
) -> None:
    sensors = {
        f"b{i:03d}": Sensor(connection="ua1", node=node)
        for i, node in enumerate(sim.bench_node_ids)
    }
    source = make_source(
        connection(sim.endpoint, mode="subscribe", sampling_interval="50ms"), sensors
    )
    flowing = asyncio.Event()
    flowing.set()
    good: list[Reading] = []

    async def sink(batch: Sequence[Reading]) -> None:
        await flowing.wait()  # the rules' backpressure, stuck
        good.extend(r for r in batch if r.quality is Quality.GOOD)

    await write_round(sim, 0)
    async with running(source, sink):  # type: ignore[arg-type]  # a sink, not a Collector
        await wait_until(lambda: len({r.sensor_id for r in good}) == NODES)
        flowing.clear()
        number = 0
        deadline = time.monotonic() + 15
        while source.notifications_dropped == 0:
            assert time.monotonic() < deadline, "nothing dropped behind a stalled sink"
            number += 1
            await write_round(sim, number)
            await asyncio.sleep(0.15)  # paces the rounds: each its own publish response
        # The last round while the queue is full: it arrives (and NODES older go) first.
        dropped = source.notifications_dropped
        number += 1
        await write_round(sim, number)
        await wait_until(lambda: source.notifications_dropped >= dropped + NODES)
        flowing.set()
        final = {f"b{i:03d}": float(number * 1000 + i) for i in range(NODES)}
        await wait_until(
            lambda: {r.sensor_id: r.value for r in good[-NODES * 3 :]}.items() >= final.items()
        )

    assert source.notifications_dropped > 0
    # Per sensor, values only go forward: what was dropped was older than what was kept.
    last: dict[str, float] = {}
    for reading in good:
        assert isinstance(reading.value, float)
        assert reading.value >= last.get(reading.sensor_id, -1.0), reading
        last[reading.sensor_id] = reading.value
    assert last == final


def no_readings(*args: Any) -> Any:
    raise AssertionError("no data change is expected here")


async def test_the_callback_swap_refuses_a_session_it_does_not_recognise(
    sim: OpcUaSimulator,
) -> None:
    owner: Any = SimpleNamespace(notifications_dropped=0)
    client = Client(sim.endpoint, timeout=5)
    await client.connect()
    try:
        subscription = await client.create_subscription(ua.CreateSubscriptionParameters(), None)
        handler = _DataChangeHandler(owner, no_readings, {}, maxsize=10)
        handler.attach(client, subscription)
        callbacks = client.uaclient._subscription_callbacks
        assert callbacks[subscription.subscription_id] == handler.published
        # asyncua's callback is no longer there to replace: a second swap must not guess.
        with pytest.raises(RuntimeError, match="subscription callback"):
            _DataChangeHandler(owner, no_readings, {}, maxsize=10).attach(client, subscription)
        # asyncua's stale-subscription watchdog recreates a subscription (and gives it back
        # its own callback) unless each response is noted as asyncua's callback notes it.
        subscription.last_publish_at = 0.0
        assert subscription.is_stale(1.5)
        keep_alive = ua.PublishResult(SubscriptionId=subscription.subscription_id)
        keep_alive.NotificationMessage.SequenceNumber = 7
        keep_alive.NotificationMessage.NotificationData = []
        handler.published(keep_alive)
        assert not subscription.is_stale(1.5)
        assert subscription.last_sequence_number == 7
        # A status asyncua makes up for its subscriptions (a dropped link) is noted.
        await client.uaclient.session.inform_subscriptions(
            ua.StatusCode(ua.StatusCodes.BadShutdown)
        )
        assert handler.status_problem == "subscription status BadShutdown"
    finally:
        await client.disconnect()


async def test_a_subscription_asyncua_recreates_still_delivers_here(sim: OpcUaSimulator) -> None:
    """asyncua's own stale watchdog (or a transfer after a reconnect) recreates a
    subscription and registers ``publish_callback`` for the new id: its data must still come
    to the agent's queue, and a callback that is not the agent's is seen by the watchdog
    (before: the data went to asyncua's unread queue while the keep-alives fed the agent's
    watchdog — a connection that looked healthy and delivered nothing)."""
    owner: Any = SimpleNamespace(notifications_dropped=0)
    client = Client(sim.endpoint, timeout=5)
    await client.connect()
    try:
        params = ua.CreateSubscriptionParameters(RequestedPublishingInterval=50)
        subscription = await client.create_subscription(params, None)
        handler = _DataChangeHandler(owner, no_readings, {}, maxsize=1000)
        handler.attach(client, subscription)
        await subscription.subscribe_data_change(client.get_node(sim.bench_node_ids[0]))
        first_id = subscription.subscription_id
        await subscription.recreate()
        assert subscription.subscription_id != first_id
        assert handler.still_attached()

        async def arrives(value: float) -> None:
            await sim.set_bench_value(0, value)
            deadline = time.monotonic() + 10
            while True:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"{value} never reached the agent's queue"
                published = await asyncio.wait_for(handler.events.take(100), remaining)
                if any(item.Value.Value.Value == value for items in published for item in items):
                    return

        await arrives(4242.0)
        # A path of asyncua that gives the subscription its own callback back is noticed.
        callbacks = client.uaclient._subscription_callbacks
        callbacks[subscription.subscription_id] = lambda result: None
        assert not handler.still_attached()
    finally:
        await client.disconnect()
