"""The agent's own cost of a hub-confirmed drain, two checkouts alternating (issue 16).

    .venv/bin/python bench/outbox_agent_cpu.py --other-tree ../before --rounds 3
    .venv/bin/python bench/outbox_agent_cpu.py --echo --other-tree ../before --rounds 4
    .venv/bin/python bench/outbox_agent_cpu.py --spy DIR   # py-spy raw profiles of the drains

One mosquitto, one ``edge-agent hub`` (SQLite) and the MaintainX emulator for the whole run;
the hub first learns a 10,000-event backlog (a first delivery that creates the work orders),
then each round drains the same 10,000 events again, ``confirm: hub``, once per checkout, in
a child process of that checkout's interpreter and code (its own ``edge_agent``). Each drain
reports its wall time and the CPU seconds of the agent's process (the forwarder, the outbox,
paho's thread) and of the hub's process over the same drain: the CPU figures are what a
change of the agent's side moves, the wall time is bound by the hub as well.

``--echo``: instead of the hub, a paho client in its own process answers each alert with a
valid ``ok`` result at once (the least a hub does): the agent's figures then move less
with the hub's share of the two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
BACKLOG = 10_000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# -- the child: one drain with one checkout's code -----------------------------------------


def hub_event(i: int, base: int) -> dict[str, Any]:
    """A valid alert, one alert per event (as ``bench/outbox.py``'s; not imported from
    there: that module puts this checkout first on ``sys.path``)."""
    from edge_agent.alerts import ALERT_SCHEMA, format_time_ns, make_alert_id, make_event_id

    alert_id = make_alert_id("site-a", f"rule-{i % 100}", base + i)
    return {
        "schema": ALERT_SCHEMA,
        "site": "site-a",
        "event_id": make_event_id(alert_id, "activated"),
        "alert_id": alert_id,
        "event": "activated",
        "time": format_time_ns(base + i),
        "time_ns": base + i,
        "rule": f"rule-{i % 100}",
        "sensor": "pressure",
        "asset": {"id": f"pump-{i % 7}", "name": "Pump", "maintainx_id": None},
        "value": 9.5,
        "peak": 9.9,
        "limit": 8.0,
        "unit": "bar",
        "priority": "HIGH",
        "notify": True,
        "work_order": {
            "title": f"High pressure {i}",
            "description": "bench",
            "priority": "HIGH",
            "categories": [],
            "assignees": [],
            "due_date": None,
        },
    }


async def _drain(port: int, outbox: Any, count: int, max_awaiting: int, limit_s: float) -> float:
    from edge_agent.config.models import Mqtt
    from edge_agent.forwarders.mqtt import MqttForwarder

    config = Mqtt.model_validate(
        {
            "host": "127.0.0.1",
            "port": port,
            "inflight": 100,
            "client_id": "bench-agent-cpu",
            "confirm": "hub",
            "result_timeout": "5s",
            "result_timeout_max": "20s",
            "max_awaiting": max_awaiting,
        }
    )
    forwarder = MqttForwarder(config, "site-a", outbox, Path(ROOT), idle_poll_s=0.01)
    started = time.perf_counter()
    task = asyncio.create_task(forwarder.run())
    while forwarder.status.sent < count and time.perf_counter() - started < limit_s:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    await forwarder.close()
    if forwarder.status.sent < count:
        raise RuntimeError(f"only {forwarder.status.sent} of {count} confirmed in {limit_s} s")
    return elapsed


def child(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(args.tree))
    from edge_agent.outbox import Outbox

    # Count the worker-thread calls (each a hand-off of the GIL and back).
    calls = 0
    to_thread = asyncio.to_thread

    def counted(*a: Any, **k: Any) -> Any:
        nonlocal calls
        calls += 1
        return to_thread(*a, **k)

    asyncio.to_thread = counted  # type: ignore[assignment]

    events = [hub_event(i, args.base) for i in range(args.count)]
    with Outbox.open(Path(args.dir), 2_000_000_000) as outbox:
        for start in range(0, len(events), 1000):
            outbox.put_many(events[start : start + 1000])
        hub_before = process_cpu_s(args.hub_pid)
        cpu_before = time.process_time()
        wall = asyncio.run(_drain(args.port, outbox, args.count, args.max_awaiting, args.limit))
        cpu = time.process_time() - cpu_before
        hub = process_cpu_s(args.hub_pid) - hub_before
        left = outbox.stats().depth + outbox.awaiting_count()
    figures = {"wall_s": wall, "agent_cpu_s": cpu, "hub_cpu_s": hub, "left": left}
    print(json.dumps({**figures, "worker_calls": calls}))
    return 0


# -- the parent: peers, priming, rounds ----------------------------------------------------


def start_peers(work: Path) -> tuple[list[subprocess.Popen[bytes]], int]:
    """mosquitto, the emulator and the hub (``bench/outbox.py``'s); returns them (hub last)
    and the MQTT port."""
    sys.path.insert(0, str(BENCH_DIR))
    from outbox import start_hub_peers

    procs: list[subprocess.Popen[bytes]] = []
    try:
        return procs, start_hub_peers(work, procs)
    except BaseException:
        for proc in procs:
            proc.kill()
        raise


def echo_hub(port: int, ready: Any) -> None:
    """Answer every alert at once with a valid ``ok`` result (own process)."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="bench-echo-hub", protocol=mqtt.MQTTv5
    )
    client.max_inflight_messages_set(100)

    def on_message(_c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        event = json.loads(message.payload)
        answer = {
            "site": "site-a",
            "status": "ok",
            "event_id": event["event_id"],
            "alert_id": event["alert_id"],
            "time": "2026-12-05T00:00:00.000Z",
        }
        client.publish("edge/v1/site-a/results", json.dumps(answer).encode(), qos=1)

    client.on_message = on_message
    client.on_subscribe = lambda *_: ready.set()
    client.connect("127.0.0.1", port)
    client.subscribe("edge/v1/site-a/alerts", qos=1)
    client.loop_forever()


def start_echo(work: Path) -> tuple[list[Any], int]:
    """mosquitto and the echo hub; returns them (echo last) and the MQTT port."""
    import multiprocessing

    sys.path.insert(0, str(BENCH_DIR))
    from ports import free_port, wait_for_port

    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 100000\nmax_inflight_messages 100\nset_tcp_nodelay true\n"
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    if not wait_for_port(port, timeout_s=10):
        broker.kill()
        raise RuntimeError("mosquitto did not start")
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    echo = context.Process(target=echo_hub, args=(port, ready), daemon=True)
    echo.start()
    if not ready.wait(30):
        raise RuntimeError("the echo hub did not subscribe")
    return [broker, echo], port


def run_child(
    tree: Path, work: Path, name: str, common: list[str], spy: Path | None
) -> dict[str, Any]:
    python = tree / ".venv" / "bin" / "python"
    command = [str(python), str(Path(__file__).resolve()), "--child", "--tree", str(tree)]
    command += ["--dir", str(work / name), *common]
    if spy is not None:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        out = spy / f"{name}.txt"
        command = [py_spy, "record", "--gil", "-r", "200", "-f", "raw", "-o", str(out), "--"]
        command += [str(python), str(Path(__file__).resolve()), "--child", "--tree", str(tree)]
        command += ["--dir", str(work / name), *common]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=tree)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed: {done.stderr[-2000:]}")
    last = [line for line in done.stdout.splitlines() if line.startswith("{")][-1]
    result: dict[str, Any] = json.loads(last)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--other-tree", type=Path, help="a second checkout, alternating")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-awaiting", type=int, default=100)
    parser.add_argument("--spy", type=Path, help="write py-spy raw profiles here")
    parser.add_argument("--echo", action="store_true", help="a paho echo instead of the hub")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hub-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=BACKLOG, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=float, default=120.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    trees = {"this": ROOT}
    if args.other_tree is not None:
        trees = {"other": args.other_tree.resolve(), "this": ROOT}
    if args.spy is not None:
        args.spy.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="bench-agent-cpu-") as tmp:
        work = Path(tmp)
        procs, port = start_echo(work) if args.echo else start_peers(work)
        try:
            # Random alert times (new ids every run): the hub creates them once, in the prime.
            base = time.time_ns() + random.randrange(1 << 20) * 1_000_000
            common = ["--port", str(port), "--base", str(base), "--hub-pid", str(procs[-1].pid)]
            if not args.echo:
                prime = run_child(ROOT, work, "prime", [*common, "--limit", "900"], None)
                print(f"first delivery (the hub creates {BACKLOG:,}): {prime['wall_s']:.2f} s")
            common += ["--max-awaiting", str(args.max_awaiting)]
            for round_no in range(1, args.rounds + 1):
                order = list(trees.items())
                if round_no % 2 == 0:
                    order.reverse()  # neither checkout always goes first
                for name, tree in order:
                    result = run_child(tree, work, f"{name}-{round_no}", common, args.spy)
                    results[name].append(result)
                    print(
                        f"round {round_no} {name:5} ({tree.name}): wall {result['wall_s']:.2f} s,"
                        f" agent CPU {result['agent_cpu_s']:.2f} s,"
                        f" hub CPU {result['hub_cpu_s']:.2f} s, worker-thread calls"
                        f" {result['worker_calls']}, left {result['left']}",
                        flush=True,
                    )
        finally:
            for proc in reversed(procs):
                proc.terminate()
                if isinstance(proc, subprocess.Popen):
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                else:
                    proc.join(10)
    for name, runs in results.items():
        cpu = [r["agent_cpu_s"] for r in runs]
        wall = [r["wall_s"] for r in runs]
        print(
            f"{name}: agent CPU median {statistics.median(cpu):.2f} s"
            f" ({min(cpu):.2f}-{max(cpu):.2f}), wall median {statistics.median(wall):.2f} s"
            f" ({min(wall):.2f}-{max(wall):.2f}), {BACKLOG / statistics.median(cpu):,.0f}"
            " events per agent CPU second"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
