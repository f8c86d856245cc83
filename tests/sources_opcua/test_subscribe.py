"""Subscribe mode against a real asyncua server: changes, failed items, watchdog, restarts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.ua.uaerrors import BadMessageNotAvailable, BadSubscriptionIdInvalid

from edge_agent.readings import Quality
from edge_agent.simulators.opcua import OpcUaSimulator
from edge_agent.sources.opcua.source import NOT_CONNECTED

from .conftest import (
    PLANT,
    Collector,
    connection,
    is_good,
    make_source,
    plant_sensors,
    running,
    wait_until,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[OpcUaSimulator]:
    simulator = OpcUaSimulator(update_interval_s=0.2)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def plant_back_to_normal(sim: OpcUaSimulator) -> AsyncIterator[None]:
    yield
    sim.silence_subscriptions(False)
    await sim.start()
    for name in PLANT.values():
        await sim.clear_fault(name)


async def test_changes_and_bad_status_arrive(sim: OpcUaSimulator) -> None:
    source = make_source(connection(sim.endpoint, mode="subscribe", sampling_interval="50ms"))
    sink = Collector()
    async with running(source, sink):
        await sink.wait_all(list(PLANT), is_good)
        mark = sink.mark()
        await sim.set_value(PLANT["p101_bearing_temp"], 88.5)
        reading = await sink.wait_for(
            lambda r: r.sensor_id == "p101_bearing_temp" and r.value == 88.5, since=mark
        )
        assert reading.quality is Quality.GOOD
        assert reading.source_time_ns == sim.source_time_ns_of(PLANT["p101_bearing_temp"])

        mark = sink.mark()
        await sim.set_status(PLANT["p101_bearing_temp"], "BadSensorFailure")
        failed = await sink.wait_for(
            lambda r: r.sensor_id == "p101_bearing_temp" and r.quality is Quality.BAD, since=mark
        )
        assert (failed.value, failed.reason) == (None, "BadSensorFailure")
    assert source.notifications_dropped == 0


async def test_failed_monitored_item_is_a_bad_reading(sim: OpcUaSimulator) -> None:
    source = make_source(
        connection(sim.endpoint, mode="subscribe", sampling_interval="50ms"),
        plant_sensors({"ghost": "ns=2;s=Line1.P999.Nothing"}),
    )
    sink = Collector()
    async with running(source, sink):
        # Until the session is up, every sensor reads "not connected" (a slow connect gives
        # several such rounds): the first reading of ghost's own comes after those.
        ghost = await sink.wait_for(
            lambda r: r.sensor_id == "ghost" and not (r.reason or "").startswith(NOT_CONNECTED)
        )
        assert (ghost.quality, ghost.reason) == (Quality.BAD, "BadNodeIdUnknown")
        # It keeps being reported, like a poll would, while the others stay good.
        again = await sink.wait_for(lambda r: r.sensor_id == "ghost", since=sink.mark())
        assert again.quality is Quality.BAD
        await sink.wait_all(list(PLANT), is_good)


async def test_watchdog_rebuilds_a_silent_subscription_not_a_quiet_one(
    sim: OpcUaSimulator,
) -> None:
    source = make_source(
        connection(sim.endpoint, mode="subscribe", sampling_interval="50ms", watchdog="2s")
    )
    sink = Collector()
    async with running(source, sink):
        await sink.wait_all(list(PLANT), is_good)
        # Quiet: no value changes at all, but keep-alives flow. Not a reason to rebuild.
        for name in PLANT.values():
            sim.make_stale(name)
        await asyncio.sleep(3.0)  # 1.5 watchdog windows of nothing but keep-alives
        assert source.subscription_rebuilds == 0
        sessions_before = source.stats.connect_attempts

        # Silent: the server stops publishing (no data, no keep-alive), the socket stays up.
        sim.silence_subscriptions(True)
        await wait_until(lambda: source.subscription_rebuilds >= 1)
        sim.silence_subscriptions(False)
        mark = sink.mark()
        await sim.set_value(PLANT["m201_vibration"], 4.5)
        await sink.wait_for(lambda r: r.sensor_id == "m201_vibration" and r.value == 4.5, mark)
        assert source.stats.connect_attempts > sessions_before  # a new session was built


async def test_server_restart_bad_while_down_good_after_no_storm(sim: OpcUaSimulator) -> None:
    source = make_source(connection(sim.endpoint, mode="subscribe", sampling_interval="50ms"))
    sink = Collector()
    async with running(source, sink):
        await sink.wait_all(list(PLANT), is_good)
        attempts_before = source.stats.connect_attempts

        await sim.stop()
        down = sink.mark()
        for _ in range(3):
            seen = await sink.wait_all(
                list(PLANT),
                lambda r: r.quality is Quality.BAD and (r.reason or "").startswith(NOT_CONNECTED),
                since=down,
            )
            down = sink.readings.index(seen["m201_vibration"], down) + 1

        await sim.start()
        up = sink.mark()
        await sink.wait_all(list(PLANT), is_good, since=up)
        # Re-subscribed: a change made after the restart arrives.
        mark = sink.mark()
        await sim.set_value(PLANT["m201_winding_temp"], 111.0)
        await sink.wait_for(lambda r: r.sensor_id == "m201_winding_temp" and r.value == 111.0, mark)
    attempts = source.stats.connect_attempts - attempts_before
    assert 1 <= attempts <= 40, attempts
    assert sim.counters.republish_requests < 50


class _Values:
    """A plain asyncua subscription handler (for the tests of the simulator's fix)."""

    def __init__(self) -> None:
        self.values: list[object] = []

    def datachange_notification(self, node: object, val: object, data: object) -> None:
        self.values.append(val)


async def test_simulator_answers_republish_of_nothing_with_bad_message_not_available(
    sim: OpcUaSimulator,
) -> None:
    client = Client(sim.endpoint, timeout=5)
    await client.connect()
    try:
        subscription = await client.create_subscription(100, _Values())
        with pytest.raises(BadMessageNotAvailable):
            await client.uaclient.session.republish(subscription.subscription_id, 9999)
        with pytest.raises(BadSubscriptionIdInvalid):
            await client.uaclient.session.republish(424242, 1)
    finally:
        await client.disconnect()


async def test_asyncua_reconnect_after_a_blip_does_not_spin_on_republish(
    sim: OpcUaSimulator,
) -> None:
    # The LIBRARIES.md bug: after a transport drop the 2.1 client transfers its subscription
    # and asks for the missed messages until the server says there are none. The simulator
    # says so, so the client asks a few times, not 15,000.
    client = Client(sim.endpoint, timeout=5, watchdog_intervall=5, auto_reconnect=True)
    await client.connect(reconnect_request_timeout=5)
    values = _Values()
    try:
        subscription = await client.create_subscription(50, values)
        await subscription.subscribe_data_change(
            [client.get_node(f"ns=2;s={PLANT['m201_vibration']}")]
        )
        await wait_until(lambda: len(values.values) > 0)
        republish_before = sim.counters.republish_requests

        sim.drop_connections()
        await asyncio.sleep(0.2)  # let the client notice the drop before waiting for it
        await wait_until(lambda: client.uaclient.state is UaClientState.CONNECTED)
        await sim.set_value(PLANT["m201_vibration"], 6.25)
        await wait_until(lambda: 6.25 in values.values)
        republished = sim.counters.republish_requests - republish_before
        assert republished < 20, republished
    finally:
        await client.disconnect()


async def test_source_rebuilds_its_session_after_a_blip(sim: OpcUaSimulator) -> None:
    source = make_source(connection(sim.endpoint, mode="subscribe", sampling_interval="50ms"))
    sink = Collector()
    async with running(source, sink):
        await sink.wait_all(list(PLANT), is_good)
        attempts = source.stats.connect_attempts
        sim.drop_connections()
        await wait_until(lambda: source.stats.connect_attempts > attempts)
        mark = sink.mark()
        await sim.set_value(PLANT["p101_bearing_temp"], 70.5)
        await sink.wait_for(lambda r: r.sensor_id == "p101_bearing_temp" and r.value == 70.5, mark)


async def test_watchdog_rebuilds_a_client_spinning_on_republish(sim: OpcUaSimulator) -> None:
    # Drive the spin the way asyncua's busy loop does: Republish after Republish on the
    # source's own session. The watchdog counts them and rebuilds the session.
    source = make_source(
        connection(sim.endpoint, mode="subscribe", sampling_interval="50ms", watchdog="5s")
    )
    sink = Collector()
    async with running(source, sink):
        await sink.wait_all(list(PLANT), is_good)
        client = source._client
        assert client is not None
        for sequence in range(200):
            if source.subscription_rebuilds:
                break
            with contextlib.suppress(BadMessageNotAvailable, BadSubscriptionIdInvalid):
                await client.uaclient.session.republish(1, sequence)
        await wait_until(lambda: "Republish" in (source.stats.last_error or ""))
        assert source.subscription_rebuilds >= 1
        mark = sink.mark()
        await sim.set_value(PLANT["m201_vibration"], 2.75)
        await sink.wait_for(lambda r: r.sensor_id == "m201_vibration" and r.value == 2.75, mark)


async def test_absolute_deadband_filters_small_changes(sim: OpcUaSimulator) -> None:
    source = make_source(
        connection(sim.endpoint, mode="subscribe", sampling_interval="50ms", deadband=1.0)
    )
    sink = Collector()
    bearing = PLANT["p101_bearing_temp"]
    async with running(source, sink):
        await sim.set_value(bearing, 70.0)
        await sink.wait_for(lambda r: r.sensor_id == "p101_bearing_temp" and r.value == 70.0)
        mark = sink.mark()
        await sim.set_value(bearing, 70.5)  # inside the deadband
        await asyncio.sleep(0.5)  # ten sampling intervals in which it could have been sent
        await sim.set_value(bearing, 72.0)  # outside
        await sink.wait_for(lambda r: r.sensor_id == "p101_bearing_temp" and r.value == 72.0, mark)
    values = [r.value for r in sink.readings[mark:] if r.sensor_id == "p101_bearing_temp"]
    assert 70.5 not in values
