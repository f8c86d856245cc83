"""Subscribe mode against a real asyncua server decodes its publish responses with the
lean decoder (none left to asyncua's, none failed) and delivers the values, scaled and
timed as the general path would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from edge_agent.config.models import Sensor
from edge_agent.readings import Quality
from edge_agent.simulators.opcua import OpcUaSimulator
from edge_agent.sources.opcua import lean_publish

from .conftest import Collector, connection, make_source, running, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

NODES = 20


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[OpcUaSimulator]:
    simulator = OpcUaSimulator(nodes=NODES)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()


async def test_a_servers_responses_are_decoded_lean(
    sim: OpcUaSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = lean_publish.decode_publish_response
    lean_data_changes = []

    def watched(data: bytes, lean_for: Any) -> Any:
        response, lean = decoded(data, lean_for)
        if lean and response.Parameters.NotificationMessage.NotificationData:
            lean_data_changes.append(response)
        return response, lean

    monkeypatch.setattr(lean_publish, "decode_publish_response", watched)
    sensors = {
        f"b{i:02d}": Sensor.model_validate(
            {"connection": "ua1", "node": node}
            | ({"scale": {"factor": 2.0, "offset": 1.0}} if i == 0 else {})
        )
        for i, node in enumerate(sim.bench_node_ids)
    }
    source = make_source(
        connection(sim.endpoint, mode="subscribe", sampling_interval="50ms"), sensors
    )
    sink = Collector()
    async with running(source, sink):
        await sink.wait_all(list(sensors), lambda r: r.quality is Quality.GOOD)
        mark = sink.mark()
        for index in range(NODES):
            await sim.set_bench_value(index, 1000.0 + index)
        expected = {f"b{i:02d}": 1000.0 + i for i in range(NODES)}
        expected["b00"] = 2 * 1000.0 + 1
        await wait_until(
            lambda: {r.sensor_id: r.value for r in sink.readings[mark:]}.items() >= expected.items()
        )
    assert (source.publish_decoded_by_asyncua, source.publish_decode_errors) == (0, 0)
    assert lean_data_changes
