"""The OPC UA simulator takes values while it runs (issue 21 §4), and an OPC UA source
that lost its server tries again at least every ``max(poll, 5 s)`` (issue 21 §3)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from edge_agent.common.backoff import PROBE_EVERY_S
from edge_agent.simulators.control import ControlServer
from edge_agent.simulators.opcua import OpcUaSimulator, control_setter, point_map
from tests.conftest import free_port

from .conftest import Collector, connection, make_source

NAME = "Line1.P101.BearingTemp"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[OpcUaSimulator]:
    simulator = OpcUaSimulator(nodes=0, update_interval_s=0.1)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_set_holds_a_node_and_null_releases_it(sim: OpcUaSimulator) -> None:
    control = ControlServer(point_map(), control_setter(sim), "127.0.0.1", 0)
    await control.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{control.port}") as client:
            held = await client.post("/set", json={"name": NAME, "value": 95.5})
            assert held.status_code == 200
            await asyncio.sleep(0.3)  # three profile ticks: the value stays held
            assert sim.value_of(NAME) == 95.5
            # The agent's own source reads what was set.
            source = make_source(connection(sim.endpoint))
            sink = Collector()
            task = asyncio.create_task(source.run(sink))
            try:
                await sink.wait_for(
                    lambda r: r.sensor_id == "p101_bearing_temp" and r.value == 95.5
                )
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            bit = await client.post("/set", json={"name": NAME, "value": True})
            assert bit.status_code == 400 and "takes a number" in bit.json()["error"]
            released = await client.post("/set", json={"name": NAME, "value": None})
            assert released.status_code == 200
            await asyncio.sleep(0.3)
            assert abs(sim.value_of(NAME) - 62.0) < 5
    finally:
        await control.close()


def test_reconnect_delay_is_capped_while_the_backoff_grows() -> None:
    # A 30 s initial backoff would wait up to 30 s before trying the server again.
    conn = connection(
        f"opc.tcp://127.0.0.1:{free_port()}/", backoff={"initial": "30s", "max": "60s"}
    )
    source = make_source(conn)
    delays = [source._reconnect_delay() for _ in range(50)]
    assert max(delays) <= PROBE_EVERY_S
