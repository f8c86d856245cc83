"""The whole agent (`edge-agent run`, a real process) against the simulated plant.

Measures, on this machine:
  1. start-up time: process start to /readyz answering 200 (goal < 2 s);
  2. resident memory and CPU of the agent process at 1,000 and 10,000 Modbus tags polled
     every second, one rule per ten tags (goal < 100 MiB and 10 % of a core at 1,000;
     < 150 MiB and 30 % at 10,000);
  3. latency from a threshold crossing at the plant to the work order at the MaintainX
     emulator, p50 and p99 (goal p99 < poll interval + on_delay + 100 ms).

    .venv/bin/python bench/agent.py [--quick]
    .venv/bin/python bench/agent.py --other-tree ../main --rounds 3   # RSS/CPU before/after
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge_agent.demo.plant import free_port, seed_demo_assets  # noqa: E402
from edge_agent.simulators.maintainx import Emulator  # noqa: E402
from edge_agent.simulators.modbus import ModbusPlant  # noqa: E402

API_KEY = "bench-key-5e1f9a"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class Loop:
    """An event loop in a thread for the simulators."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def run(self, fn: Any) -> Any:
        async def wrapper() -> Any:
            return fn()

        return self.call(wrapper())


def site(tags: int, modbus_port: int, health_port: int, mx_url: str, state: Path) -> dict[str, Any]:
    sensors: dict[str, Any] = {}
    rules: list[dict[str, Any]] = []
    for i in range(tags):
        sensors[f"t{i:05d}"] = {
            "connection": "plc1",
            "register": {"table": "holding", "address": i, "type": "uint16"},
        }
        if i % 10 == 0:
            rules.append(
                {
                    "id": f"r{i:05d}",
                    "asset": "P-101",
                    "sensor": f"t{i:05d}",
                    "high": {"limit": 1000},
                    "priority": "HIGH",
                    "chattering": {"activations": 100000, "window": "1s"},
                    "work_order": {"title": "{asset.name}: tag {sensor.id} at {value}"},
                }
            )
    return {
        "version": 1,
        "site": {"id": "bench"},
        "defaults": {
            "poll": "1s",
            "stale_after": "1m",
            "flood": {"work_orders": 100000, "window": "1s"},
        },
        "connections": {
            "plc1": {"protocol": "modbus-tcp", "host": "127.0.0.1", "port": modbus_port}
        },
        "assets": {"P-101": {"maintainx_id": 1001, "name": "Pump P-101"}},
        "sensors": sensors,
        "rules": rules,
        "forwarding": {
            "mode": "maintainx",
            "maintainx": {
                "base_url": mx_url,
                "api_key": "${BENCH_MX_KEY}",
                "rate_limit": 100000,
                "backoff": {"initial": "50ms", "max": "500ms"},
            },
        },
        "storage": {"path": str(state)},
        "health": {"listen": f"127.0.0.1:{health_port}"},
        "logging": {"level": "warning"},
    }


START_TIMEOUT_S = 120.0


class Agent:
    def __init__(self, document: dict[str, Any], workdir: Path, tree: Path = REPO) -> None:
        self.tree = tree  # the checkout whose agent runs (its own .venv when it has one)
        self.port = int(document["health"]["listen"].rsplit(":", 1)[1])
        self.site = workdir / "site.yaml"
        self.site.write_text(json.dumps(document))
        self.log = (workdir / "agent.log").open("ab")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start; returns seconds until :meth:`started` says so (on the monotonic clock)."""
        started = time.perf_counter()
        python = self.tree / ".venv" / "bin" / "python"
        self.process = subprocess.Popen(
            [str(python) if python.exists() else sys.executable, "-m", "edge_agent", "run"]
            + [str(self.site)],
            stdout=self.log,
            stderr=self.log,
            cwd=self.tree,
            env={**os.environ, "BENCH_MX_KEY": API_KEY, "PYTHONPATH": str(self.tree)},
        )
        deadline = started + START_TIMEOUT_S
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the agent exited; see {self.log.name}")
            if self.started():
                return time.perf_counter() - started
            time.sleep(0.005)
        # Stopped here: a caller that does not reach its own stop would leave it polling
        # beside every benchmark after it (one did, at ≈ 5 % of a core).
        self.stop()
        raise RuntimeError(f"the agent did not become ready; see {self.log.name}")

    def readyz(self) -> tuple[int, bytes] | None:
        """``/readyz``'s status and body; None while nothing listens yet."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:  # 503 (not ready) still has its body
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return None

    def started(self) -> bool:
        """Ready: ``/readyz`` said 200 (sources and forwarder connected)."""
        answer = self.readyz()
        return answer is not None and answer[0] == 200

    def cpu_s(self) -> float:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_mib(self) -> float:
        assert self.process is not None
        pages = int(Path(f"/proc/{self.process.pid}/statm").read_text().split()[1])
        return pages * PAGE / 2**20

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(20)
            self.process = None


def measure_load(
    tags: int, seconds: float, loop: Loop, mx: Emulator, workdir: Path, tree: Path = REPO
) -> dict[str, Any]:
    plant = ModbusPlant(port=0, registers=max(1024, tags), profiles=False)
    loop.call(plant.start())
    try:
        document = site(tags, plant.port, free_port(), mx.url, workdir / f"state-{tags}")
        agent = Agent(document, workdir, tree)
        ready_s = agent.start()
        time.sleep(5)  # warm-up: first polls, imports settled
        reads0 = agent.metric('edge_agent_readings_total{quality="good"}')
        cpu0, wall0 = agent.cpu_s(), time.perf_counter()
        peak_rss = 0.0
        while time.perf_counter() - wall0 < seconds:
            peak_rss = max(peak_rss, agent.rss_mib())
            time.sleep(0.5)
        cpu1, wall1 = agent.cpu_s(), time.perf_counter()
        reads1 = agent.metric('edge_agent_readings_total{quality="good"}')
        overruns = agent.metric("edge_agent_source_overruns_total")
        agent.stop()
        return {
            "tags": tags,
            "ready_s": ready_s,
            "rss_mib": peak_rss,
            "cpu_pct": 100 * (cpu1 - cpu0) / (wall1 - wall0),
            "readings_per_s": (reads1 - reads0) / (wall1 - wall0),
            "overruns": overruns,
        }
    finally:
        loop.call(plant.close())


def measure_latency(
    trials: int, loop: Loop, mx: Emulator, workdir: Path
) -> tuple[list[float], list[float]]:
    """Crossing → work order at the emulator, in seconds (poll 1 s, on_delay 0)."""
    plant = ModbusPlant(port=0, profiles=False)
    loop.call(plant.start())
    agent: Agent | None = None
    try:
        document = site(10, plant.port, free_port(), mx.url, workdir / "state-latency")
        document["logging"]["level"] = "info"  # the "Alarm event." lines time the rules
        latency_dir = workdir / "latency"
        latency_dir.mkdir()
        agent = Agent(document, latency_dir)
        agent.start()
        latencies: list[float] = []
        crossings: list[float] = []
        for trial in range(trials):
            seen = {wo["id"] for wo in mx.work_orders}
            loop.run(lambda: plant.set_registers("holding", 0, [2000]))
            crossed = time.perf_counter()
            crossings.append(time.time())
            deadline = crossed + 10
            while time.perf_counter() < deadline:
                if any(wo["id"] not in seen for wo in mx.work_orders):
                    latencies.append(time.perf_counter() - crossed)
                    break
                time.sleep(0.002)
            else:
                print(f"  trial {trial}: no work order within 10 s", file=sys.stderr)
            loop.run(lambda: plant.set_registers("holding", 0, [0]))
            # Wait until the rule is back to NORMAL (cleared) before the next crossing;
            # a random pause puts the next crossing at a random phase of the poll.
            deadline = time.perf_counter() + 10
            while (
                time.perf_counter() < deadline
                and agent.metric('edge_agent_rule_state{rule="r00000",state="NORMAL"}') != 1.0
            ):
                time.sleep(0.05)
            time.sleep(0.1 + (trial * 0.37) % 1.0)
        activations = _activation_times(latency_dir / "agent.log")
        to_rules = [a - c for c, a in zip(crossings, activations, strict=False)]
        return latencies, to_rules
    finally:
        if agent is not None:
            agent.stop()
        loop.call(plant.close())


def _activation_times(log: Path) -> list[float]:
    """Wall-clock times of the agent's "activated" alarm events, from its JSON log."""
    from datetime import datetime

    times = []
    for line in log.read_text().splitlines():
        if '"activated"' in line:
            event = json.loads(line)
            # The forwarder's "Work order created." line names the event too: skip it.
            if event.get("message") == "Alarm event." and event.get("event") == "activated":
                times.append(datetime.fromisoformat(event["time"]).timestamp())
    return times


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def compare_trees(other: Path, rounds: int, seconds: float, loop: Loop, mx: Emulator) -> int:
    """RSS and CPU at 1,000 and 10,000 tags of this checkout and ``other``, alternating
    within each round so that both see the same machine load."""
    print(f"edge-agent: load figures, this tree ({REPO.name}) and {other.name}, alternating")
    tags_list = (1000,) if os.environ.get("BENCH_SKIP_10K") else (1000, 10000)
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        for round_no in range(1, rounds + 1):
            for tags in tags_list:
                for name, tree in ((REPO.name, REPO), (other.name, other)):
                    workdir = Path(tmp) / f"{round_no}-{tags}-{name}"
                    workdir.mkdir()
                    r = measure_load(tags, seconds, loop, mx, workdir, tree)
                    print(
                        f"round {round_no} {name:>12} {tags:>6} tags @1s: RSS "
                        f"{r['rss_mib']:6.1f} MiB, CPU {r['cpu_pct']:5.1f} %, "
                        f"{r['readings_per_s']:8.0f} readings/s, ready in {r['ready_s']:.2f} s",
                        flush=True,
                    )
    mx.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke test)")
    parser.add_argument(
        "--other-tree",
        type=Path,
        help="also run this checkout's agent, alternating with this one (load figures only)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="with --other-tree: rounds")
    args = parser.parse_args()
    # The simulators run in this process: keep their per-request logging quiet so the
    # bench's own CPU use stays small (the agent is measured in its own process).
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    seconds = 8.0 if args.quick else 20.0
    trials = 8 if args.quick else 30
    loop = Loop()
    mx = Emulator(keys={API_KEY: 1}, rate_limiting=False).start()
    seed_demo_assets(mx)
    if args.other_tree is not None:
        return compare_trees(args.other_tree.resolve(), args.rounds, seconds, loop, mx)
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        workdir = Path(tmp)
        print("edge-agent: whole agent benchmark (Modbus plant, MaintainX emulator, loopback)")
        results = [
            measure_load(tags, seconds, loop, mx, workdir)
            for tags in ((1000,) if os.environ.get("BENCH_SKIP_10K") else (1000, 10000))
        ]
        starts = []
        for _ in range(3):
            plant = ModbusPlant(port=0, profiles=False)
            loop.call(plant.start())
            agent = Agent(site(10, plant.port, free_port(), mx.url, workdir / "s"), workdir)
            starts.append(agent.start())
            agent.stop()
            loop.call(plant.close())
        latencies, to_rules = measure_latency(trials, loop, mx, workdir)
    mx.stop()
    goals = {1000: (100, 10), 10000: (150, 30)}
    for r in results:
        rss_goal, cpu_goal = goals[r["tags"]]
        print(
            f"{r['tags']:>6} tags @1s: RSS {r['rss_mib']:6.1f} MiB (goal <{rss_goal}), "
            f"CPU {r['cpu_pct']:5.1f} % of a core (goal <{cpu_goal}), "
            f"{r['readings_per_s']:8.0f} readings/s, overruns {r['overruns']:.0f}, "
            f"ready in {r['ready_s']:.2f} s"
        )
    print(
        f"start-up to /readyz (10 tags): median {statistics.median(starts):.2f} s, "
        f"max {max(starts):.2f} s (goal <2 s)"
    )
    if latencies:
        print(
            f"crossing → work order at the emulator ({len(latencies)}/{trials} trials, poll 1 s, "
            f"on_delay 0): p50 {percentile(latencies, 50) * 1000:.0f} ms, "
            f"p99 {percentile(latencies, 99) * 1000:.0f} ms, "
            f"max {max(latencies) * 1000:.0f} ms (goal p99 < 1100 ms)"
        )
    if to_rules:
        print(
            f"  of which crossing → alarm event in the agent (poll phase + rules): "
            f"p50 {percentile(to_rules, 50) * 1000:.0f} ms, "
            f"p99 {percentile(to_rules, 99) * 1000:.0f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
