"""The agent beside the bare library: CPU and memory of polling the same Modbus registers.

One Modbus simulator (`edge-agent simulate modbus`, its own process) serves two pollers that
take turns, window after window in one run, so that both see the same machine load:

- the agent (`edge-agent run`): 100 holding registers as 100 uint16 sensors, 100 threshold
  rules that never trip, MaintainX forwarding (nothing to send);
- the bare pymodbus poller (``bench/bare_modbus_poller.py``): one request for the same 100
  registers on the same schedule, nothing else.

Each window starts the process, lets it warm up, then takes its CPU (user + system, from
/proc, in % of one core) and RSS over the window. Prints the medians per poll interval and
the ratio agent / bare. Goal (issue 16): at 10 ms the agent's CPU ≤ 1.6× the bare poller's.

    .venv/bin/python bench/peers.py [--rates 10,100] [--rounds 3] [--window 15]

``--other-tree DIR`` measures a second checkout's agent in the same rounds; with
``--together`` the two agents and the bare poller run at once in each window instead of
one after the other (pairs that share the machine's load second by second: on a shared
machine the windows of one round differ by more than two trees do).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import agent as agent_bench  # noqa: E402
from agent import CLK_TCK, PAGE, Agent  # noqa: E402
from ports import free_port  # noqa: E402
from sources_modbus import modbus_simulator  # noqa: E402

REGISTERS = 100
WARMUP_S = 5.0


def site(rate_ms: int, modbus_port: int, state: Path) -> dict[str, Any]:
    """The agent's site: the same registers as the bare poller, one rule per sensor."""
    sensors = {
        f"r{i}": {
            "connection": "plc",
            "register": {"table": "holding", "address": i, "type": "uint16"},
        }
        for i in range(REGISTERS)
    }
    rules = [
        {"id": f"r{i}-high", "asset": "A", "sensor": f"r{i}", "high": {"limit": 70000}}
        for i in range(REGISTERS)
    ]
    return {
        "version": 1,
        "site": {"id": "peers"},
        "connections": {
            "plc": {
                "protocol": "modbus-tcp",
                "host": "127.0.0.1",
                "port": modbus_port,
                "poll": f"{rate_ms}ms",
                "timeout": "1s",
            }
        },
        "assets": {"A": {"maintainx_id": 1, "name": "A"}},
        "sensors": sensors,
        "rules": rules,
        "forwarding": {
            "mode": "maintainx",
            # Nothing trips, so nothing is ever sent here.
            "maintainx": {"base_url": "http://127.0.0.1:9/v1", "api_key": "${BENCH_MX_KEY}"},
        },
        "storage": {"path": str(state)},
        "health": {"listen": f"127.0.0.1:{free_port()}"},
        "logging": {"level": "warning"},
    }


# ---------------------------------------------------------------- measuring


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * PAGE / 2**20


def window(pid: int, seconds: float) -> tuple[float, float]:
    """CPU % of one core over ``seconds`` after the warm-up, and the RSS at the end."""
    time.sleep(WARMUP_S)
    cpu0, wall0 = cpu_s(pid), time.perf_counter()
    time.sleep(seconds)
    cpu1, wall1 = cpu_s(pid), time.perf_counter()
    return 100 * (cpu1 - cpu0) / (wall1 - wall0), rss_mib(pid)


def measure_agent(
    rate_ms: int, port: int, seconds: float, workdir: Path, tree: Path | None = None
) -> tuple[float, float]:
    """The agent of this checkout, or of another one (``tree``: before/after figures)."""
    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    # The tree's own interpreter, from inside the tree (``-m`` puts the working directory
    # first on sys.path). ``Agent``'s default tree is this checkout: without passing
    # ``tree`` both columns measured this checkout.
    agent = Agent(site(rate_ms, port, run_dir / "state"), run_dir, tree or agent_bench.REPO)
    agent.start()
    try:
        assert agent.process is not None
        return window(agent.process.pid, seconds)
    finally:
        agent.stop()


def measure_bare(rate_ms: int, port: int, seconds: float) -> tuple[float, float]:
    process = subprocess.Popen(
        [
            sys.executable,
            str(BENCH_DIR / "bare_modbus_poller.py"),
            str(port),
            str(rate_ms),
            str(REGISTERS),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "polling":
            raise RuntimeError("the bare poller did not start")
        return window(process.pid, seconds)
    finally:
        process.terminate()
        process.wait(10)


def measure_together(
    rate_ms: int, port: int, seconds: float, workdir: Path, other_tree: Path
) -> tuple[float, float, float]:
    """This checkout's agent, the other tree's and the bare poller polling at once: one
    window for the three, so that each sees the same load (the machine's load moves from
    one 15 s window to the next by more than the difference between two trees)."""
    agents: list[Agent] = []
    bare = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "bare_modbus_poller.py"), str(port), str(rate_ms)]
        + [str(REGISTERS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for tree in (agent_bench.REPO, other_tree):
            # Each site picks its free ports once the agent before has bound its own.
            run_dir = Path(tempfile.mkdtemp(dir=workdir))
            agents.append(Agent(site(rate_ms, port, run_dir / "state"), run_dir, tree))
            agents[-1].start()
        assert bare.stdout is not None
        if bare.stdout.readline().strip() != "polling":
            raise RuntimeError("the bare poller did not start")
        pids = [a.process.pid for a in agents if a.process is not None] + [bare.pid]
        time.sleep(WARMUP_S)
        cpu0, wall0 = [cpu_s(pid) for pid in pids], time.perf_counter()
        time.sleep(seconds)
        cpu1, wall1 = [cpu_s(pid) for pid in pids], time.perf_counter()
        mine, other, alone = (100 * (b - a) / (wall1 - wall0) for a, b in zip(cpu0, cpu1))
        return mine, other, alone
    finally:
        for agent in agents:
            agent.stop()
        bare.terminate()
        bare.wait(10)


def together(args: argparse.Namespace, rates: list[int]) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp,
        modbus_simulator(REGISTERS) as port,
    ):
        for rate_ms in rates:
            runs = [
                measure_together(rate_ms, port, args.window, Path(tmp), args.other_tree)
                for _ in range(args.rounds)
            ]
            print(f"every {rate_ms:>4} ms, all three at once (this / other / bare, % of a core):")
            for mine, other, alone in runs:
                print(
                    f"    {mine:5.2f} / {other:5.2f} / {alone:5.2f} -> {mine / alone:.2f}x and "
                    f"{other / alone:.2f}x the bare poller, this / other {mine / other:.3f}"
                )
            print(
                "    median ratio this / other: "
                f"{statistics.median(m / o for m, o, _ in runs):.3f}, to the bare poller: "
                f"{statistics.median(m / b for m, _, b in runs):.2f}x (this), "
                f"{statistics.median(o / b for _, o, b in runs):.2f}x (other)"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="10,100", help="poll intervals in ms")
    parser.add_argument("--rounds", type=int, default=3, help="windows of each, alternating")
    parser.add_argument("--window", type=float, default=15.0, help="seconds measured")
    parser.add_argument(
        "--other-tree",
        type=Path,
        help="another checkout of edge-agent (e.g. main) measured in the same rounds",
    )
    parser.add_argument(
        "--together",
        action="store_true",
        help="with --other-tree: run both agents and the bare poller at once in each window",
    )
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    os.environ["BENCH_MX_KEY"] = "peers-bench-key"
    if args.together:
        if not args.other_tree:
            parser.error("--together needs --other-tree")
        together(args, rates)
        return 0
    print(
        f"agent beside the bare pymodbus poller: {REGISTERS} holding registers, "
        f"{REGISTERS} rules that never trip, {args.rounds} alternating windows of "
        f"{args.window:.0f} s after {WARMUP_S:.0f} s warm-up (CPU in % of one core)"
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp,
        modbus_simulator(REGISTERS) as port,
    ):
        for rate_ms in rates:
            figures: dict[str, list[tuple[float, float]]] = {"agent": [], "bare": []}
            if args.other_tree:
                figures["other"] = []
            for _ in range(args.rounds):
                figures["agent"].append(measure_agent(rate_ms, port, args.window, Path(tmp)))
                figures["bare"].append(measure_bare(rate_ms, port, args.window))
                if args.other_tree:
                    figures["other"].append(
                        measure_agent(rate_ms, port, args.window, Path(tmp), args.other_tree)
                    )
            cpu = {k: statistics.median(c for c, _ in v) for k, v in figures.items()}
            rss = {k: statistics.median(r for _, r in v) for k, v in figures.items()}
            ratios = [a[0] / b[0] for a, b in zip(figures["agent"], figures["bare"], strict=True)]
            print(
                f"every {rate_ms:>4} ms: agent {cpu['agent']:5.2f} % / {rss['agent']:5.1f} MiB, "
                f"bare pymodbus {cpu['bare']:5.2f} % / {rss['bare']:5.1f} MiB -> CPU ratio "
                f"{cpu['agent'] / cpu['bare']:.2f}x (per round: "
                f"{', '.join(f'{r:.2f}' for r in ratios)})"
                + (" (goal <= 1.6x)" if rate_ms == 10 else "")
            )
            if args.other_tree:
                # Each round's own pair: the bare poller's window sits between the two
                # agents' windows, so a round's ratios share its load.
                others = [
                    o[0] / b[0] for o, b in zip(figures["other"], figures["bare"], strict=True)
                ]
                print(
                    f"    other tree: agent {cpu['other']:5.2f} % / {rss['other']:5.1f} MiB "
                    f"-> CPU ratio {cpu['other'] / cpu['bare']:.2f}x the bare poller (per round: "
                    f"{', '.join(f'{r:.2f}' for r in others)})"
                )
            for name, runs in figures.items():
                print(f"    {name:5s} windows: " + ", ".join(f"{c:.2f} %" for c, _ in runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
