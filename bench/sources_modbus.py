"""Modbus read plan benchmark: coalesced plan against one request per sensor.

10,000 holding registers behind 2,500 sensors of mixed types (float64, uint64, float32,
12-character strings), served by the Modbus simulator in another process. One poll cycle
of each plan: requests per cycle (counted by the client) and cycle time (median of several
cycles). Goal: at least 15x fewer requests and a cycle at least 10x faster than naive.

Run: .venv/bin/python bench/sources_modbus.py
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ports import free_port, wait_for_port

REGISTERS = 10_000
# 10 sensors over 40 registers, repeated 250 times: 2,500 sensors on 10,000 registers.
PATTERN: list[dict[str, Any]] = (
    [{"type": "float64"}] * 3
    + [{"type": "uint64", "word_order": "little"}] * 3
    + [{"type": "float32", "byte_order": "little"}] * 2
    + [{"type": "string", "length": 12}] * 2
)


@contextmanager
def modbus_simulator(registers: int = REGISTERS) -> Iterator[int]:
    """`edge-agent simulate modbus` in another process; yields its port. Its stderr goes to a
    file shown only if it does not start: pymodbus logs an error with its last frames in hex
    each time a poller the benchmarks stop leaves mid-request."""
    port = free_port()
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edge_agent",
                "simulate",
                "modbus",
                "--port",
                str(port),
                "--registers",
                str(registers + 16),
                "--no-profiles",
                # Any free port for its control endpoint: the default, the port after the
                # simulator's, may be taken (a run lost to "Address already in use").
                "--control-port",
                "0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        try:
            if not wait_for_port(port):
                errors.seek(0)
                raise RuntimeError(
                    f"the simulator did not listen on {port}: {errors.read()[-2000:]}"
                )
            yield port
        finally:
            process.terminate()
            process.wait(timeout=10)


def bench_sensors(connection: str = "plc", count: int = 2500) -> dict[str, Any]:
    """Sensor models: ``count`` sensors of mixed types over ``count * 4`` registers."""
    from edge_agent.config.models import Register, Sensor

    sensors: dict[str, Any] = {}
    address = 0
    for i in range(count):
        shape = PATTERN[i % len(PATTERN)]
        register = Register.model_validate({"table": "holding", "address": address, **shape})
        sensors[f"r{i:05d}"] = Sensor.model_validate(
            {"connection": connection, "register": register.model_dump()}
        )
        address += register.count
    return sensors


async def _measure(port: int, rounds: int) -> dict[str, Any]:
    """Alternate coalesced and naive cycles on two connections, so that both see the same
    machine load; every cycle's requests are counted by the client."""
    from edge_agent.config.models import Defaults, ModbusTcp
    from edge_agent.sources.modbus.plan import naive_plan
    from edge_agent.sources.modbus.source import ModbusSource

    connection = ModbusTcp.model_validate(
        {"protocol": "modbus-tcp", "host": "127.0.0.1", "port": port, "timeout": "3s"}
    )
    coalesced = ModbusSource("coalesced", connection, bench_sensors(), Defaults())
    naive = ModbusSource("naive", connection, bench_sensors(), Defaults())
    naive.set_plan(naive_plan(naive.sensor_addresses))
    times: dict[str, list[float]] = {"coalesced": [], "naive": []}
    requests: dict[str, int] = {}
    bad = 0
    try:
        for source in (coalesced, naive):
            await source.read_once()  # connect and warm up
        for _ in range(rounds):
            for source in (coalesced, naive):
                before = source.stats.requests
                started = time.perf_counter()
                readings = await source.poll_once()
                times[source.name].append(time.perf_counter() - started)
                requests[source.name] = source.stats.requests - before
                bad += sum(not r.is_good for r in readings)
    finally:
        await coalesced.close()
        await naive.close()
    if bad:
        raise RuntimeError(f"{bad} bad readings in the benchmark")
    return {"times": times, "requests": requests}


def run_modbus_bench(rounds: int = 7) -> dict[str, float]:
    """Run the comparison; print and return the figures."""
    with modbus_simulator() as port:
        result = asyncio.run(_measure(port, rounds))
    times, requests = result["times"], result["requests"]
    c_med, n_med = statistics.median(times["coalesced"]), statistics.median(times["naive"])
    c_min, n_min = min(times["coalesced"]), min(times["naive"])
    figures = {
        "modbus_sensors": 2500.0,
        "modbus_registers": float(REGISTERS),
        "modbus_coalesced_requests_per_cycle": float(requests["coalesced"]),
        "modbus_naive_requests_per_cycle": float(requests["naive"]),
        "modbus_coalesced_cycle_s": c_med,
        "modbus_naive_cycle_s": n_med,
        "modbus_coalesced_cycle_min_s": c_min,
        "modbus_naive_cycle_min_s": n_min,
        "modbus_request_ratio": requests["naive"] / requests["coalesced"],
        "modbus_speedup": n_med / c_med,
    }
    print("Modbus: 2,500 sensors (float64, uint64, float32, string) on 10,000 holding registers")
    print(f"  {rounds} rounds, each one coalesced cycle then one naive cycle")
    for name in ("coalesced", "naive"):
        med, low = statistics.median(times[name]), min(times[name])
        print(
            f"  {name:9s} {requests[name]:5d} requests/cycle, "
            f"cycle median {med * 1000:7.1f} ms, min {low * 1000:7.1f} ms"
        )
    print(
        f"  -> {figures['modbus_request_ratio']:.1f}x fewer requests (goal >= 15x), "
        f"{figures['modbus_speedup']:.1f}x faster by median, {n_min / c_min:.1f}x by min "
        "(goal >= 10x)"
    )
    return figures


if __name__ == "__main__":
    run_modbus_bench()
