"""Where the agent's CPU goes, by event-loop callback and worker-thread call.

The agent of ``bench/peers.py`` (100 Modbus registers as 100 sensors, 100 rules that never
trip) polls the same simulator every ``--rate`` ms. A ``sitecustomize`` in a scratch folder
(this checkout's package and virtualenv borrowed, the checkout not changed) times each
``asyncio`` callback (``Handle._run``) and each worker-thread call (``_WorkItem.run``) by
the thread's CPU time, keyed by what runs: a task's coroutine, a callback's function, the
function handed to ``asyncio.to_thread``. After the warm-up the counts are reset, and after
``--window`` seconds they are printed beside the whole process's CPU (the rest is the event
loop's own work between callbacks, the interpreter's, the garbage collector's).

A sampler (py-spy) gives a sample to the deepest Python frame and cannot see what a short
wake-up costs; this counts every one. Timing costs ≈ 1-2 µs a callback (two clock reads):
figures are a little high, most for the smallest callbacks.

    .venv/bin/python bench/agent_callbacks.py [--rate 10] [--window 30]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import agent as agent_bench  # noqa: E402
import peers  # noqa: E402
from sources_modbus import modbus_simulator  # noqa: E402

WARMUP_S = 6.0

SITECUSTOMIZE = """
import asyncio.events, collections, concurrent.futures.thread as pool, os, signal
import threading, time

cpu = collections.Counter()
calls = collections.Counter()
lock = threading.Lock()


def name_of(function):
    function = getattr(function, "__func__", function)
    function = getattr(function, "func", function)  # functools.partial
    code = getattr(function, "__code__", None)
    if code is None:
        return repr(function)[:80]
    where = code.co_filename.rsplit("/", 2)[-1]
    return f"{getattr(function, '__qualname__', code.co_name)} ({where}:{code.co_firstlineno})"


def key_of(handle):
    owner = getattr(handle._callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        code = getattr(owner.get_coro(), "cr_code", None)
        return "task " + (code.co_qualname if code else repr(owner.get_coro())[:60])
    return name_of(handle._callback)


run_handle = asyncio.events.Handle._run


def timed_handle(self):
    started = time.thread_time_ns()
    try:
        return run_handle(self)
    finally:
        key = key_of(self)
        cpu[key] += time.thread_time_ns() - started
        calls[key] += 1


run_item = pool._WorkItem.run


def timed_item(self):
    started = time.thread_time_ns()
    try:
        return run_item(self)
    finally:
        function = self.fn
        # asyncio.to_thread hands over functools.partial(context.run, function, ...)
        if getattr(function, "func", None) is not None and getattr(function, "args", None):
            function = function.args[0]
        key = "thread " + name_of(function)
        with lock:
            cpu[key] += time.thread_time_ns() - started
            calls[key] += 1


def reset(*_):
    with lock:
        cpu.clear()
        calls.clear()


def dump(*_):
    with lock, open(os.environ["AGENT_CALLBACKS_OUT"], "w") as out:
        for key, ns in cpu.most_common():
            out.write(f"{ns}\\t{calls[key]}\\t{key}\\n")


asyncio.events.Handle._run = timed_handle
pool._WorkItem.run = timed_item
signal.signal(signal.SIGUSR1, reset)
signal.signal(signal.SIGUSR2, dump)
"""


def scratch_tree(workdir: Path) -> Path:
    tree = workdir / "timed"
    tree.mkdir()
    (tree / "edge_agent").symlink_to(agent_bench.REPO / "edge_agent")
    if (agent_bench.REPO / ".venv").exists():
        (tree / ".venv").symlink_to(agent_bench.REPO / ".venv")
    (tree / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return tree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=10, help="poll interval in ms")
    parser.add_argument("--window", type=float, default=30.0, help="seconds counted")
    parser.add_argument("--top", type=int, default=25, help="lines printed")
    args = parser.parse_args()
    os.environ["BENCH_MX_KEY"] = "peers-bench-key"
    with tempfile.TemporaryDirectory(prefix="bench-callbacks-") as tmp, modbus_simulator() as port:
        work = Path(tmp)
        out = work / "callbacks.tsv"
        os.environ["AGENT_CALLBACKS_OUT"] = str(out)
        agent = peers.PollingAgent(
            peers.site(args.rate, port, work / "state"), work, scratch_tree(work)
        )
        agent.start()
        try:
            assert agent.process is not None
            pid = agent.process.pid
            time.sleep(WARMUP_S)
            os.kill(pid, signal.SIGUSR1)
            cpu0, wall0 = peers.cpu_s(pid), time.perf_counter()
            time.sleep(args.window)
            os.kill(pid, signal.SIGUSR2)
            cpu1, wall1 = peers.cpu_s(pid), time.perf_counter()
            deadline = time.monotonic() + 10
            while not out.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.2)  # the dump is written in one go; let it finish
            if not peers.alive(pid) or not out.exists():
                raise RuntimeError("the agent did not write its callback counts")
        finally:
            agent.stop()
        rows = [line.split("\t", 2) for line in out.read_text().splitlines()]
    seconds = wall1 - wall0
    process_ms = 1000 * (cpu1 - cpu0)
    counted_ms = sum(int(ns) for ns, _, _ in rows) / 1e6
    print(
        f"agent polling 100 registers every {args.rate} ms, {seconds:.0f} s: process "
        f"{process_ms:.0f} ms of CPU ({process_ms / seconds / 10:.2f} % of a core), of which "
        f"{counted_ms:.0f} ms in the callbacks and thread calls below"
    )
    print(f"{'ms':>9} {'% core':>7} {'calls':>7}  what")
    for ns, count, key in rows[: args.top]:
        ms = int(ns) / 1e6
        print(f"{ms:9.2f} {ms / seconds / 10:7.3f} {int(count):7d}  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
