"""The OPC UA simulator's load mode (``--bench-update``): every bench node changes each
interval, read back through a real client."""

from __future__ import annotations

import asyncio

import pytest
from asyncua.client.client import Client

from edge_agent.simulators.opcua import OpcUaSimulator


async def _bench_values(simulator: OpcUaSimulator) -> list[float]:
    client = Client(simulator.endpoint, timeout=5)
    await client.connect()
    try:
        nodes = [client.get_node(node_id) for node_id in simulator.bench_node_ids]
        return [float(await node.read_value()) for node in nodes]
    finally:
        await client.disconnect()


@pytest.mark.asyncio
async def test_bench_nodes_alternate_between_i_and_i_plus_a_half() -> None:
    simulator = OpcUaSimulator(nodes=3, bench_update_interval_s=0.05)
    await simulator.start()
    try:
        seen: list[set[float]] = [set() for _ in range(3)]
        for _ in range(100):
            for index, value in enumerate(await _bench_values(simulator)):
                seen[index].add(value)
            if all(len(values) >= 2 for values in seen):
                break
            await asyncio.sleep(0.02)
        assert seen == [{0.0, 0.5}, {1.0, 1.5}, {2.0, 2.5}]
    finally:
        await simulator.close()
