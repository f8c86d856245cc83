"""Poll mode against a real asyncua server: batched reads, chunking, status, restarts."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from edge_agent.readings import Quality
from edge_agent.simulators.opcua import OpcUaSimulator
from edge_agent.sources.opcua.source import NOT_CONNECTED
from tests.conftest import free_port

from .conftest import (
    PLANT,
    Collector,
    by_id,
    connection,
    is_good,
    make_source,
    plant_sensors,
    running,
    wait_until,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

BENCH_NODES = 25


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[OpcUaSimulator]:
    simulator = OpcUaSimulator(nodes=BENCH_NODES, update_interval_s=0.2)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def plant_back_to_normal(sim: OpcUaSimulator) -> AsyncIterator[None]:
    yield
    await sim.start()
    await sim.set_max_nodes_per_read(0)
    for name in PLANT.values():
        await sim.clear_fault(name)


async def test_reads_every_node_with_its_source_timestamp(sim: OpcUaSimulator) -> None:
    await sim.set_value(PLANT["p101_bearing_temp"], 63.25)
    source = make_source(
        connection(sim.endpoint), plant_sensors({"ghost": "ns=2;s=Line1.P999.Nothing"})
    )
    readings = by_id(await source.read_once())

    assert set(readings) == {*PLANT, "ghost"}
    for sensor_id in PLANT:
        assert readings[sensor_id].quality is Quality.GOOD, readings[sensor_id]
    bearing = readings["p101_bearing_temp"]
    assert bearing.value == 63.25
    assert bearing.source_time_ns == sim.source_time_ns_of(PLANT["p101_bearing_temp"])
    assert readings["ghost"].quality is Quality.BAD
    assert readings["ghost"].reason == "BadNodeIdUnknown"


async def test_bad_status_is_bad_quality_with_the_status_as_reason(sim: OpcUaSimulator) -> None:
    await sim.set_status(PLANT["p101_bearing_temp"], "BadSensorFailure")
    readings = by_id(await make_source(connection(sim.endpoint)).read_once())

    bearing = readings["p101_bearing_temp"]
    assert (bearing.quality, bearing.value, bearing.reason) == (
        Quality.BAD,
        None,
        "BadSensorFailure",
    )
    assert readings["m201_winding_temp"].quality is Quality.GOOD


def bench_sensors() -> dict[str, str]:
    return {f"bench_{i}": f"ns=2;s=Bench.N{i:05d}" for i in range(BENCH_NODES)}


@pytest.mark.parametrize(("server_limit", "configured_limit"), [(7, 1000), (0, 4), (9, 5)])
async def test_reads_are_chunked_to_the_smaller_limit(
    sim: OpcUaSimulator, server_limit: int, configured_limit: int
) -> None:
    await sim.set_max_nodes_per_read(server_limit)
    source = make_source(
        connection(sim.endpoint, max_nodes_per_read=configured_limit),
        plant_sensors(bench_sensors()),
    )
    before = len(sim.counters.read_sizes)
    refused_before = sim.counters.refused_reads

    readings = by_id(await source.read_once())

    limit = min(configured_limit, server_limit or configured_limit)
    total = len(PLANT) + BENCH_NODES
    sizes = sim.counters.read_sizes[before:]
    assert sizes == [min(limit, total - start) for start in range(0, total, limit)]
    assert len(sizes) == math.ceil(total / limit)
    assert sim.counters.refused_reads == refused_before
    # Every value is in its place across chunk boundaries.
    for i in range(BENCH_NODES):
        assert readings[f"bench_{i}"].value == float(i)
        assert readings[f"bench_{i}"].quality is Quality.GOOD


async def test_a_chunk_the_server_refuses_is_bad_not_lost(sim: OpcUaSimulator) -> None:
    # A server whose advertised limit lies: "no limit", yet reads of more than 10 are refused.
    await sim.set_max_nodes_per_read(10, advertise=False)
    source = make_source(
        connection(sim.endpoint, max_nodes_per_read=1000), plant_sensors(bench_sensors())
    )
    refused_before = sim.counters.refused_reads
    readings = await source.read_once()
    assert sim.counters.refused_reads == refused_before + 1
    assert len(readings) == len(PLANT) + BENCH_NODES
    assert {r.quality for r in readings} == {Quality.BAD}
    assert {r.reason for r in readings} == {"BadTooManyOperations"}


async def test_unreachable_server_gives_bad_readings_not_an_exception() -> None:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/nothing/"
    readings = await make_source(connection(endpoint)).read_once()
    assert {r.sensor_id for r in readings} == set(PLANT)
    assert all(r.quality is Quality.BAD and "cannot connect" in (r.reason or "") for r in readings)


async def test_server_restart_bad_while_down_good_after_no_storm(sim: OpcUaSimulator) -> None:
    source = make_source(connection(sim.endpoint))
    sink = Collector()
    async with running(source, sink):
        await sink.wait_all(list(PLANT), is_good)
        attempts_before = source.stats.connect_attempts

        await sim.stop()
        down = sink.mark()
        # Several poll intervals of bad "not connected" readings for every sensor.
        for _ in range(3):
            seen = await sink.wait_all(
                list(PLANT),
                lambda r: r.quality is Quality.BAD and (r.reason or "").startswith(NOT_CONNECTED),
                since=down,
            )
            down = sink.readings.index(seen["m201_vibration"], down) + 1
        assert not source.stats.connected

        await sim.start()
        up = sink.mark()
        await sink.wait_all(list(PLANT), is_good, since=up)
        await wait_until(lambda: source.stats.connected)

    # Backoff 100 ms → 400 ms with jitter: a handful of attempts, never a storm.
    attempts = source.stats.connect_attempts - attempts_before
    assert 1 <= attempts <= 40, attempts


async def test_scripted_ramp_and_stale_node(sim: OpcUaSimulator) -> None:
    bearing = PLANT["p101_bearing_temp"]
    source = make_source(connection(sim.endpoint))
    sink = Collector()
    async with running(source, sink):
        await sim.ramp(bearing, 97.0, duration_s=0.6)  # past the 85 degC limit
        hot = await sink.wait_for(
            lambda r: r.sensor_id == "p101_bearing_temp" and (r.value or 0) >= 96.99
        )
        assert hot.quality is Quality.GOOD

        sim.make_stale(PLANT["m201_winding_temp"])
        # A read the server answered just before may still be on its way (with a value the
        # profile has changed since): take the frozen value from a read sent after it.
        cycles = source.stats.reads
        await wait_until(lambda: source.stats.reads >= cycles + 1)
        frozen = await sink.wait_for(lambda r: r.sensor_id == "m201_winding_temp", sink.mark())
        # Wait past two profile updates (0.2 s each) by counting poll cycles (100 ms each).
        cycles = source.stats.reads
        await wait_until(lambda: source.stats.reads >= cycles + 5)
        later = await sink.wait_for(lambda r: r.sensor_id == "m201_winding_temp", sink.mark())
    # A stale node keeps its value and its source timestamp: the rules see it age.
    assert (later.value, later.source_time_ns) == (frozen.value, frozen.source_time_ns)
