"""OPC UA subscribe mode, the whole agent (`edge-agent run`, a real process):

1. latency, sampling interval 10 ms: a threshold crossing written into the simulator (in
   this process) → the agent's "activated" alarm event (from its JSON log) and → the work
   order at the MaintainX emulator (in this process), p50 and p99 over the trials;
2. load: a 10,000-item subscription at 1 s publishing interval, every item changing every
   second (the simulator in another process): the agent's CPU in % of one core and RSS.

Goals (issue 16): crossing → alarm p99 < 50 ms, crossing → work order p99 < 150 ms; the
10,000-item subscription under 10 % of a core.

    .venv/bin/python bench/opcua_subscribe.py [--trials 30] [--window 20]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from agent import (  # noqa: E402
    API_KEY,
    Agent,
    Loop,
    _activation_times,
    free_port,
    percentile,
    seed_demo_assets,
    site,
)
from sources_opcua import simulator_process  # noqa: E402

from edge_agent.simulators.maintainx import Emulator  # noqa: E402
from edge_agent.simulators.opcua import OpcUaSimulator  # noqa: E402

LIMIT = 1000.0  # the rule's high limit (bench/agent.py's site)
LOAD_ITEMS = 10_000


def opcua_site(
    endpoint: str, items: int, sampling: str, mx_url: str, state: Path
) -> dict[str, Any]:
    """bench/agent.py's site (rules, forwarding to the emulator) on an OPC UA subscription:
    sensor t{i} is the simulator's bench node i (value i), one rule per ten sensors."""
    document = site(items, 0, free_port(), mx_url, state)
    document["connections"] = {
        "plc1": {
            "protocol": "opcua",
            "endpoint": endpoint,
            "mode": "subscribe",
            "sampling_interval": sampling,
            "timeout": "10s",
        }
    }
    document["sensors"] = {
        f"t{i:05d}": {"connection": "plc1", "node": f"ns=2;s=Bench.N{i:05d}"} for i in range(items)
    }
    return document


def measure_latency(
    trials: int, loop: Loop, mx: Emulator, workdir: Path
) -> tuple[list[float], list[float]]:
    """(crossing → work order, crossing → alarm event), in seconds."""
    simulator = OpcUaSimulator(nodes=1)
    loop.call(simulator.start())
    agent: Agent | None = None
    try:
        document = opcua_site(simulator.endpoint, 1, "10ms", mx.url, workdir / "state-latency")
        document["logging"]["level"] = "info"  # the "Alarm event." lines time the rules
        latency_dir = workdir / "latency"
        latency_dir.mkdir()
        agent = Agent(document, latency_dir)
        agent.start()
        time.sleep(2)  # the subscription's first values
        to_work_order: list[float] = []
        crossings: list[float] = []
        for trial in range(trials):
            seen = {wo["id"] for wo in mx.work_orders}
            crossings.append(time.time())
            crossed = time.perf_counter()
            loop.call(simulator.set_bench_value(0, LIMIT * 2))
            deadline = crossed + 10
            while time.perf_counter() < deadline:
                if any(wo["id"] not in seen for wo in mx.work_orders):
                    to_work_order.append(time.perf_counter() - crossed)
                    break
                time.sleep(0.001)
            else:
                print(f"  trial {trial}: no work order within 10 s", file=sys.stderr)
            loop.call(simulator.set_bench_value(0, 0.0))
            deadline = time.perf_counter() + 10
            while (
                time.perf_counter() < deadline
                and agent.metric('edge_agent_rule_state{rule="r00000",state="NORMAL"}') != 1.0
            ):
                time.sleep(0.02)
            time.sleep(0.05 + (trial * 0.037) % 0.1)  # a random phase of the sampling
        activations = _activation_times(latency_dir / "agent.log")
        to_alarm = [a - c for c, a in zip(crossings, activations, strict=False)]
        return to_work_order, to_alarm
    finally:
        if agent is not None:
            agent.stop()
        loop.call(simulator.close())


def measure_load(seconds: float, mx: Emulator, workdir: Path) -> dict[str, float]:
    """CPU and RSS of the agent subscribed to LOAD_ITEMS items that change every second."""
    with simulator_process(LOAD_ITEMS, ["--bench-update", "1"]) as (endpoint, _build_s):
        document = opcua_site(endpoint, LOAD_ITEMS, "1s", mx.url, workdir / "state-load")
        # Half the values cross the limit and back every second: no rule may trip here.
        document["rules"] = []
        agent = Agent(document, workdir)
        agent.start()
        try:
            time.sleep(10)  # subscription built, first notifications in
            readings0 = agent.metric('edge_agent_readings_total{quality="good"}')
            cpu0, wall0 = agent.cpu_s(), time.perf_counter()
            time.sleep(seconds)
            cpu1, wall1 = agent.cpu_s(), time.perf_counter()
            readings1 = agent.metric('edge_agent_readings_total{quality="good"}')
            return {
                "cpu_pct": 100 * (cpu1 - cpu0) / (wall1 - wall0),
                "rss_mib": agent.rss_mib(),
                "readings_per_s": (readings1 - readings0) / (wall1 - wall0),
            }
        finally:
            agent.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--window", type=float, default=20.0, help="load: seconds measured")
    parser.add_argument("--skip-load", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    loop = Loop()
    mx = Emulator(keys={API_KEY: 1}, rate_limiting=False).start()
    seed_demo_assets(mx)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-opcua-subscribe-") as tmp:
            workdir = Path(tmp)
            to_work_order, to_alarm = measure_latency(args.trials, loop, mx, workdir)
            load = None if args.skip_load else measure_load(args.window, mx, workdir)
    finally:
        mx.stop()
    print("OPC UA subscribe mode, sampling interval 10 ms, on_delay 0:")
    for name, values, goal in (
        ("crossing → alarm event", to_alarm, 50),
        ("crossing → work order at the emulator", to_work_order, 150),
    ):
        if values:
            print(
                f"  {name} ({len(values)}/{args.trials} trials): "
                f"p50 {percentile(values, 50) * 1000:.0f} ms, "
                f"p99 {percentile(values, 99) * 1000:.0f} ms, "
                f"max {max(values) * 1000:.0f} ms (goal p99 < {goal} ms)"
            )
    if load is not None:
        print(
            f"{LOAD_ITEMS:,}-item subscription, 1 s publishing, every item changing each second: "
            f"CPU {load['cpu_pct']:.1f} % of a core (goal < 10 %), RSS {load['rss_mib']:.1f} MiB, "
            f"{load['readings_per_s']:,.0f} readings/s"
        )
        per_reading_us = load["cpu_pct"] / 100 / max(load["readings_per_s"], 1) * 1e6
        print(
            f"  = {per_reading_us:.1f} µs of CPU per notification: "
            f"{per_reading_us / 100 * LOAD_ITEMS:.1f} % of a core if all {LOAD_ITEMS:,} "
            "changed every second (the simulator cannot write that many: see readings/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
