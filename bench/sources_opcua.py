"""OPC UA read benchmark: 10,000 nodes per poll cycle, batched against one read per node.

The simulator runs in another process (``edge-agent simulate opcua --nodes 10000``). The
batched figure is the real ``OpcUaSource`` in poll mode (chunks of 1,000 nodes, one Read
request each). One read per node is timed on a sample of 500 sequential single-node Reads
over the same session kind and extrapolated to 10,000 (timing all 10,000 takes ≈ 6 s and
tells nothing more). Goal: a 10,000-node poll in under 0.5 s.

Run: ``.venv/bin/python bench/sources_opcua.py``
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ports import free_port

from edge_agent.config.models import Defaults, OpcUa, Sensor
from edge_agent.readings import Quality, Reading
from edge_agent.sources.opcua.source import OpcUaSource

NODES = 10_000
CYCLES = 8
SINGLE_READ_SAMPLE = 500
REPO_ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def simulator_process(
    nodes: int = NODES, extra_args: Sequence[str] = ()
) -> Iterator[tuple[str, float]]:
    """``edge-agent simulate opcua`` with ``nodes`` bench nodes in a child process.

    Yields (endpoint, seconds it took to build and listen)."""
    port = free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "simulate",
            "opcua",
            "--port",
            str(port),
            "--nodes",
            str(nodes),
            "--control-port",
            "0",  # not the port after the simulator's, which may be taken
            *extra_args,
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the address space is built
        if "listening on" not in line:
            raise RuntimeError(f"simulator did not start: {line!r}")
        yield line.rsplit(" ", 1)[-1].strip(), time.monotonic() - started
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def bench_source(endpoint: str, nodes: int, poll: str = "1s") -> OpcUaSource:
    """A poll-mode ``OpcUaSource`` over the simulator's first ``nodes`` bench nodes."""
    connection = OpcUa.model_validate(
        {"protocol": "opcua", "endpoint": endpoint, "mode": "poll", "poll": poll, "timeout": "10s"}
    )
    sensors = {
        f"n{i:05d}": Sensor(connection="bench", node=f"ns=2;s=Bench.N{i:05d}") for i in range(nodes)
    }
    return OpcUaSource("bench", connection, sensors, Defaults(), REPO_ROOT)


async def _batched(endpoint: str) -> tuple[list[float], int]:
    """Cycle times of the real source polling every node (and requests per cycle)."""
    source = bench_source(endpoint, NODES, poll="100ms")
    latencies: list[float] = []
    done = asyncio.Event()

    async def sink(batch: Sequence[Reading]) -> None:
        if len(batch) != NODES:
            return  # a "not connected" batch before the session opened
        wrong = [
            r for r in batch if r.quality is not Quality.GOOD or r.value != float(r.sensor_id[1:])
        ]
        if wrong:
            raise RuntimeError(f"{len(wrong)} wrong readings, e.g. {wrong[0]}")
        latencies.append(source.stats.last_latency_s)
        if len(latencies) >= CYCLES:
            done.set()

    task = asyncio.create_task(source.run(sink))
    try:
        await asyncio.wait_for(done.wait(), timeout=120)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    requests_per_cycle = source.stats.requests // max(source.stats.reads, 1)
    return latencies, requests_per_cycle


async def _one_per_node(endpoint: str) -> float:
    """Seconds for SINGLE_READ_SAMPLE sequential single-node Read requests."""
    from asyncua import ua
    from asyncua.client.client import Client
    from asyncua.ua.attribute_ids import AttributeIds

    client = Client(endpoint, timeout=10, watchdog_intervall=10)
    await client.connect()
    try:
        node_ids = [
            ua.NodeId.from_string(f"ns=2;s=Bench.N{i:05d}") for i in range(SINGLE_READ_SAMPLE)
        ]
        started = time.perf_counter()
        for node_id in node_ids:
            [dv] = await client.uaclient.read_attributes([node_id], AttributeIds.Value)
            if dv.StatusCode is not None and not dv.StatusCode.is_good():
                raise RuntimeError(f"bad read {node_id}: {dv.StatusCode}")
        return time.perf_counter() - started
    finally:
        await client.disconnect()


async def _measure(endpoint: str) -> dict[str, float]:
    latencies, requests = await _batched(endpoint)
    sample_s = await _one_per_node(endpoint)
    single_cycle_s = sample_s * NODES / SINGLE_READ_SAMPLE
    batched_s = statistics.median(latencies)
    return {
        "opcua_nodes": float(NODES),
        "opcua_batched_cycle_median_s": batched_s,
        "opcua_batched_cycle_max_s": max(latencies),
        "opcua_batched_requests_per_cycle": float(requests),
        "opcua_one_per_node_sample_nodes": float(SINGLE_READ_SAMPLE),
        "opcua_one_per_node_sample_s": sample_s,
        "opcua_one_per_node_cycle_s_extrapolated": single_cycle_s,
        "opcua_batched_speedup": single_cycle_s / batched_s,
    }


def run_opcua_bench() -> dict[str, float]:
    """Start the simulator in a child process, measure, stop it; return the figures."""
    with simulator_process(NODES) as (endpoint, build_s):
        figures = asyncio.run(_measure(endpoint))
    figures["opcua_simulator_build_s"] = build_s
    return figures


def main() -> None:
    figures = run_opcua_bench()
    width = max(len(name) for name in figures)
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:.4f}")
    goal = figures["opcua_batched_cycle_median_s"] < 0.5
    print(f"goal: 10,000-node poll < 0.5 s: {'met' if goal else 'NOT met'}")


if __name__ == "__main__":
    main()
