"""RSS of `edge-agent run` at 10,000 tags across reloads (SIGHUP) of its site file.

Starts the same agent as ``bench/agent.py``'s 10,000-tag case (Modbus plant, one rule per
ten tags, 1 s poll), lets its RSS settle, then sends SIGHUP ``--reloads`` times (the site
file unchanged; ``--change`` edits one rule's limit before the last one) and prints the RSS
after each; ``--control`` sends no SIGHUP (the drift of the same waits alone).
``--other-tree DIR`` runs that checkout's agent too, alternating, in the same run.
``--trace`` runs this tree's agent under tracemalloc instead and prints, after each reload,
the lines whose traced memory grew since the settled start (Python objects still
held) next to the RSS (what tracemalloc does not see is C heap and fragmentation).

    .venv/bin/python bench/agent_reload.py [--reloads 2] [--other-tree ../before --rounds 2]
    .venv/bin/python bench/agent_reload.py --trace [--top 25]

Run it from inside the checkout measured (``-m edge_agent`` takes the working directory
first).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import agent as agent_bench  # noqa: E402
from agent import API_KEY, REPO, Loop  # noqa: E402
from agent_memory import _wait_ready  # noqa: E402

from edge_agent.demo.plant import free_port, seed_demo_assets  # noqa: E402
from edge_agent.simulators.maintainx import Emulator  # noqa: E402
from edge_agent.simulators.modbus import ModbusPlant  # noqa: E402

# Runs in the agent's process: on SIGUSR1, a tracemalloc snapshot to $BENCH_TRACE_OUT.N.
_PROBE = """
import gc, os, signal, sys, tracemalloc
_count = [0]

def _dump(signum, frame):
    gc.collect()
    path = os.environ["BENCH_TRACE_OUT"] + "." + str(_count[0])
    _count[0] += 1
    tracemalloc.take_snapshot().dump(path + ".tmp")
    os.rename(path + ".tmp", path)

signal.signal(signal.SIGUSR1, _dump)
sys.argv = ["edge-agent", "run", sys.argv[1]]
from edge_agent.cli import main
sys.exit(main())
"""


def rss_mib(pid: int) -> float:
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * agent_bench.PAGE / 2**20


def run_one(
    tree: Path, args: argparse.Namespace, loop: Loop, mx: Emulator, workdir: Path
) -> list[float]:
    """The RSS settled after start-up, then after each reload."""
    plant = ModbusPlant(port=0, registers=max(1024, args.tags), profiles=False)
    loop.call(plant.start())
    try:
        document = agent_bench.site(args.tags, plant.port, free_port(), mx.url, workdir / "s")
        site = workdir / "site.yaml"
        site.write_text(json.dumps(document))
        port = int(document["health"]["listen"].rsplit(":", 1)[1])
        python = tree / ".venv" / "bin" / "python"
        exe = str(python) if python.exists() else sys.executable
        trace = workdir / "trace"
        command = (
            [exe, "-X", "tracemalloc=1", "-c", _PROBE, str(site)]
            if args.trace
            else [exe, "-m", "edge_agent", "run", str(site)]
        )
        figures: list[float] = []
        with (workdir / "agent.log").open("ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=log,
                cwd=tree,
                env={
                    **os.environ,
                    "BENCH_MX_KEY": API_KEY,
                    "PYTHONPATH": str(tree),
                    "BENCH_TRACE_OUT": str(trace),
                },
            )
            try:
                _wait_ready(process, port)
                for step in range(args.reloads + 1):
                    if step:
                        if args.change and step == args.reloads:
                            document["rules"][0]["high"]["limit"] += 1
                            site.write_text(json.dumps(document))
                        if not args.control:
                            process.send_signal(signal.SIGHUP)
                    time.sleep(args.seconds)
                    figures.append(rss_mib(process.pid))
                    if args.trace:
                        process.send_signal(signal.SIGUSR1)
                        _wait_file(Path(f"{trace}.{step}"))
            finally:
                process.terminate()
                process.wait(30)
        if args.trace:
            _print_trace(trace, figures, args.top)
        return figures
    finally:
        loop.call(plant.close())


def _wait_file(path: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not path.exists():
        time.sleep(0.2)


def _print_trace(trace: Path, figures: list[float], top: int) -> None:
    first = tracemalloc.Snapshot.load(f"{trace}.0")
    base = sum(s.size for s in first.statistics("filename"))
    print(f"settled: traced {base / 2**20:.1f} MiB, RSS {figures[0]:.1f} MiB")
    for step in range(1, len(figures)):
        snapshot = tracemalloc.Snapshot.load(f"{trace}.{step}")
        traced = sum(s.size for s in snapshot.statistics("filename"))
        print(
            f"after reload {step}: traced {traced / 2**20:.1f} MiB "
            f"({(traced - base) / 2**20:+.2f}), RSS {figures[step]:.1f} MiB "
            f"({figures[step] - figures[0]:+.1f}); grown since settled, by line:"
        )
        for stat in snapshot.compare_to(first, "lineno")[:top]:
            print(
                f"  {stat.size_diff / 2**20:+7.2f} MiB {stat.count_diff:+8d} × {stat.traceback[0]}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tags", type=int, default=10000)
    parser.add_argument("--reloads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=25.0, help="settling before a figure")
    parser.add_argument("--change", action="store_true", help="the last reload changes a rule")
    parser.add_argument(
        "--control", action="store_true", help="no SIGHUP: the same waits, the RSS drift alone"
    )
    parser.add_argument("--other-tree", type=Path, help="also run this checkout, alternating")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--trace", action="store_true", help="tracemalloc in this tree's agent")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    loop = Loop()
    mx = Emulator(keys={API_KEY: 1}, rate_limiting=False).start()
    seed_demo_assets(mx)
    trees = [REPO] if args.other_tree is None else [REPO, args.other_tree.resolve()]
    with tempfile.TemporaryDirectory(prefix="bench-reload-") as tmp:
        for round_no in range(1, args.rounds + 1):
            for tree in trees:
                workdir = Path(tmp) / f"{round_no}-{tree.name}"
                workdir.mkdir()
                figures = run_one(tree, args, loop, mx, workdir)
                steps = " → ".join(f"{f:.1f}" for f in figures)
                print(
                    f"round {round_no} {tree.name:>12} {args.tags} tags, {args.reloads} "
                    f"reload(s){' (last changes a rule)' if args.change else ''}"
                    f"{' (control: no SIGHUP sent)' if args.control else ''}: "
                    f"RSS {steps} MiB",
                    flush=True,
                )
    mx.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
