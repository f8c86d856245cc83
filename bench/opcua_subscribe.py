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
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from agent import (  # noqa: E402
    API_KEY,
    CLK_TCK,
    REPO,
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


def _load_window(process: Any, cpu_s: Any, seconds: float) -> float:
    """% of a core ``cpu_s()`` used over ``seconds``."""
    cpu0, wall0 = cpu_s(), time.perf_counter()
    time.sleep(seconds)
    return 100 * (cpu_s() - cpu0) / (time.perf_counter() - wall0)


def measure_agent_load(
    endpoint: str, seconds: float, mx: Emulator, workdir: Path, tree: Path = REPO
) -> dict[str, float]:
    """CPU and RSS of ``tree``'s agent subscribed to LOAD_ITEMS items that change every second."""
    document = opcua_site(endpoint, LOAD_ITEMS, "1s", mx.url, workdir / "state-load")
    # Half the values cross the limit and back every second: no rule may trip here.
    document["rules"] = []
    agent = Agent(document, workdir, tree)
    agent.start()
    try:
        time.sleep(10)  # subscription built, first notifications in
        readings0 = agent.metric('edge_agent_readings_total{quality="good"}')
        wall0 = time.perf_counter()
        cpu_pct = _load_window(agent.process, agent.cpu_s, seconds)
        readings1 = agent.metric('edge_agent_readings_total{quality="good"}')
        return {
            "cpu_pct": cpu_pct,
            "rss_mib": agent.rss_mib(),
            "readings_per_s": (readings1 - readings0) / (time.perf_counter() - wall0),
        }
    finally:
        agent.stop()


def measure_bare_load(endpoint: str, seconds: float, decode_only: bool = False) -> float:
    """CPU of asyncua alone on the same subscription (bench/bare_opcua_subscriber.py); with
    ``decode_only`` its publish loop and decoding alone (no per-item events or queue)."""
    process = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "bare_opcua_subscriber.py"), endpoint, str(LOAD_ITEMS)]
        + (["--decode-only"] if decode_only else []),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # once its items are created
        if not line.startswith("subscribed"):
            raise RuntimeError(f"the bare subscriber did not subscribe: {line!r}")
        time.sleep(5)  # the first (full) notification in

        def cpu_s() -> float:
            stat = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(stat[11]) + int(stat[12])) / CLK_TCK

        cpu_pct = _load_window(process, cpu_s, seconds)
        process.terminate()
        what = "decoding" if decode_only else "iterator mode"
        print(f"    asyncua alone ({what}): {process.communicate(timeout=15)[0].strip()}")
        return cpu_pct
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=15)


def measure_load(
    seconds: float, mx: Emulator, workdir: Path, other_tree: Path | None, rounds: int
) -> list[dict[str, float]]:
    """Per round, on one simulator: this tree's agent, the other tree's (alternating which
    goes first), and asyncua alone; CPU in % of a core."""
    results = []
    for number in range(rounds):
        with simulator_process(LOAD_ITEMS, ["--bench-update", "1"]) as (endpoint, _build_s):
            trees = [("this", REPO)] + ([("other", other_tree)] if other_tree else [])
            if number % 2:
                trees.reverse()
            result: dict[str, float] = {}
            for name, tree in trees:
                run_dir = workdir / f"load-{number}-{name}"
                run_dir.mkdir()
                load = measure_agent_load(endpoint, seconds, mx, run_dir, tree)
                result.update({f"{name}_{key}": value for key, value in load.items()})
            result["bare_cpu_pct"] = measure_bare_load(endpoint, seconds)
            result["decode_cpu_pct"] = measure_bare_load(endpoint, seconds, decode_only=True)
            results.append(result)
            print(f"  round {number + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in result.items()))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--window", type=float, default=20.0, help="load: seconds measured")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument(
        "--other-tree", type=Path, help="load: also run this checkout's agent, alternating"
    )
    parser.add_argument("--rounds", type=int, default=1, help="load: rounds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    loop = Loop()
    mx = Emulator(keys={API_KEY: 1}, rate_limiting=False).start()
    seed_demo_assets(mx)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-opcua-subscribe-") as tmp:
            workdir = Path(tmp)
            to_work_order, to_alarm = (
                ([], []) if args.skip_latency else measure_latency(args.trials, loop, mx, workdir)
            )
            other = args.other_tree.resolve() if args.other_tree else None
            loads = (
                [] if args.skip_load else measure_load(args.window, mx, workdir, other, args.rounds)
            )
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
    for load in loads:
        print(
            f"{LOAD_ITEMS:,}-item subscription, 1 s publishing, every item changing each second: "
            f"CPU {load['this_cpu_pct']:.1f} % of a core (goal < 10 %), "
            f"RSS {load['this_rss_mib']:.1f} MiB, {load['this_readings_per_s']:,.0f} readings/s; "
            f"asyncua alone {load['bare_cpu_pct']:.1f} % "
            f"(agent / asyncua alone: {load['this_cpu_pct'] / load['bare_cpu_pct']:.2f}×), "
            f"its decoding alone {load['decode_cpu_pct']:.1f} %"
        )
        if "other_cpu_pct" in load:
            print(
                f"  the other tree: CPU {load['other_cpu_pct']:.1f} %, "
                f"RSS {load['other_rss_mib']:.1f} MiB"
            )
        per_reading_us = load["this_cpu_pct"] / 100 / max(load["this_readings_per_s"], 1) * 1e6
        print(
            f"  = {per_reading_us:.1f} µs of CPU per notification: "
            f"{per_reading_us * LOAD_ITEMS / 1e4:.1f} % of a core if all {LOAD_ITEMS:,} "
            "changed every second (the simulator cannot write that many: see readings/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
