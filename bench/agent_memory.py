"""Where a running agent's memory goes: tracemalloc inside `edge-agent run` at N tags.

Starts the same agent as ``bench/agent.py`` (Modbus plant, one rule per ten tags, 1 s poll)
under ``-X tracemalloc``, lets it poll, then has it write what it holds: the traced bytes
grouped by file and by line, the live objects counted by type (shallow sizes), and its RSS.
Run it at two sizes and compare: the difference per tag is what each tag costs.

    .venv/bin/python bench/agent_memory.py [--tags 10000] [--top 30] [--json OUT]

Run it from inside the checkout measured (``-m edge_agent`` takes the working directory
first). tracemalloc slows the agent and adds its own bookkeeping to the RSS: the RSS goal is
measured by ``bench/agent.py``, not here.
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
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import agent as agent_bench  # noqa: E402
from agent import API_KEY, REPO, Loop  # noqa: E402

from edge_agent.demo.plant import free_port, seed_demo_assets  # noqa: E402
from edge_agent.simulators.maintainx import Emulator  # noqa: E402
from edge_agent.simulators.modbus import ModbusPlant  # noqa: E402

# Runs in the agent's process: on SIGUSR1, write the figures to $BENCH_MEMORY_OUT.
_PROBE = """
import gc, json, os, signal, sys, tracemalloc
from collections import Counter

def _dump(signum, frame):
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    def top(key):
        return [
            [str(s.traceback[0]), s.size, s.count] for s in snapshot.statistics(key)[:400]
        ]
    sizes, counts = Counter(), Counter()
    for obj in gc.get_objects():
        name = type(obj).__module__ + "." + type(obj).__qualname__
        sizes[name] += sys.getsizeof(obj)
        counts[name] += 1
    statm = open("/proc/self/statm").read().split()
    result = {
        "traced": tracemalloc.get_traced_memory()[0],
        "rss": int(statm[1]) * os.sysconf("SC_PAGE_SIZE"),
        "files": top("filename"),
        "lines": top("lineno"),
        "types": [[n, sizes[n], counts[n]] for n, _ in sizes.most_common(400)],
        "modules": len(sys.modules),
    }
    with open(os.environ["BENCH_MEMORY_OUT"], "w") as out:
        json.dump(result, out)

signal.signal(signal.SIGUSR1, _dump)
sys.argv = ["edge-agent", "run", sys.argv[1]]
from edge_agent.cli import main
sys.exit(main())
"""


def measure(tags: int, seconds: float, loop: Loop, mx: Emulator, workdir: Path) -> dict[str, Any]:
    plant = ModbusPlant(port=0, registers=max(1024, tags), profiles=False)
    loop.call(plant.start())
    try:
        document = agent_bench.site(tags, plant.port, free_port(), mx.url, workdir / f"s{tags}")
        site = workdir / f"site-{tags}.yaml"
        site.write_text(json.dumps(document))
        port = int(document["health"]["listen"].rsplit(":", 1)[1])
        out = workdir / f"memory-{tags}.json"
        with (workdir / f"agent-{tags}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-X", "tracemalloc=1", "-c", _PROBE, str(site)],
                stdout=log,
                stderr=log,
                env={
                    **os.environ,
                    "BENCH_MX_KEY": API_KEY,
                    "PYTHONPATH": str(REPO),
                    "BENCH_MEMORY_OUT": str(out),
                },
            )
            try:
                _wait_ready(process, port)
                time.sleep(seconds)
                process.send_signal(signal.SIGUSR1)
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and not _complete(out):
                    time.sleep(0.2)
            finally:
                process.terminate()
                process.wait(30)
        result: dict[str, Any] = json.loads(out.read_text())
        return result
    finally:
        loop.call(plant.close())


def _complete(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


def _wait_ready(process: subprocess.Popen[bytes], port: int) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the agent exited")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError("the agent did not become ready")


def _print(title: str, rows: list[list[Any]], top: int, small: dict[str, int] | None) -> None:
    print(title)
    for name, size, count in rows[:top]:
        extra = ""
        if small is not None:
            extra = f"  (+{(size - small.get(name, 0)) / 2**20:7.2f} MiB vs the small run)"
        print(f"  {size / 2**20:8.2f} MiB {count:>9} × {name}{extra}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tags", type=int, default=10000)
    parser.add_argument("--small", type=int, default=10, help="the run to compare with")
    parser.add_argument("--seconds", type=float, default=8.0, help="polling before the dump")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--json", type=Path, help="write both runs' figures here")
    args = parser.parse_args()
    loop = Loop()
    mx = Emulator(keys={API_KEY: 1}, rate_limiting=False).start()
    seed_demo_assets(mx)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        small = measure(args.small, args.seconds, loop, mx, Path(tmp))
        big = measure(args.tags, args.seconds, loop, mx, Path(tmp))
    mx.stop()
    if args.json:
        args.json.write_text(json.dumps({"small": small, "big": big}))
    extra = args.tags - args.small
    print(
        f"traced: {small['traced'] / 2**20:.1f} MiB at {args.small} tags, "
        f"{big['traced'] / 2**20:.1f} MiB at {args.tags} "
        f"({(big['traced'] - small['traced']) / extra:.0f} B a tag); RSS under tracemalloc "
        f"{small['rss'] / 2**20:.1f} / {big['rss'] / 2**20:.1f} MiB; modules {big['modules']}"
    )
    for key, title in (("files", "by file"), ("lines", "by line"), ("types", "live objects")):
        base = {name: size for name, size, _ in small[key]}
        rows = sorted(big[key], key=lambda r: r[1] - base.get(r[0], 0), reverse=True)
        _print(f"{title}, most grown first:", rows, args.top, base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
