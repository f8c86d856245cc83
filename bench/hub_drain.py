"""The hub's side of a confirmed drain (issue 16), paired: two hubs (this tree's and another
tree's, e.g. ``../before``) run side by side on one mosquitto, each under its own topic
prefix, and take turns answering the same 10,000 known alerts from a plain paho client
that keeps ``--window`` alerts awaiting their results (as the agent's ``max_awaiting``).

Per round and hub: the wall time until the last result, and the hub process's CPU time
(user + system, from /proc) over the drain — the hub's cost per alert, which other load on
the machine moves far less than the wall time. No agent outbox is involved: what differs
between the two runs is the hub alone.

    .venv/bin/python bench/hub_drain.py --other ../before [--rounds 3] [--window 100]

Each hub is first primed with the alerts (it creates their work orders at the MaintainX
emulator), so that the measured drains are answered from its record, as in
``bench/mqtt_drain.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from outbox import hub_event  # noqa: E402
from ports import free_port, wait_for_port  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def start_hub(
    tree: Path, work: Path, name: str, mqtt_port: int, mx_url: str
) -> tuple[subprocess.Popen[bytes], str]:
    """``edge-agent hub`` of ``tree`` (its own .venv) under the prefix ``{name}/v1``."""
    from ruamel.yaml import YAML

    prefix = f"{name}/v1"
    health = free_port()
    hub_file = work / f"hub-{name}.yaml"
    with hub_file.open("w") as handle:
        YAML().dump(
            {
                "hub": {"id": f"bench-{name}", "group": f"bench-{name}"},
                "broker": {"host": "127.0.0.1", "port": mqtt_port, "topic_prefix": prefix},
                "sites": {"site-a": {"api_key": "${BENCH_KEY_A}", "organization_id": 101}},
                "maintainx": {"base_url": mx_url, "rate_limit": 100_000_000},
                "dedup": {"backend": "sqlite"},
                "state_dir": str(work / f"state-{name}"),
                "health": {"listen": f"127.0.0.1:{health}"},
                "logging": {"level": "warning"},
            },
            handle,
        )
    env = {**os.environ, "PYTHONPATH": str(tree), "BENCH_KEY_A": "bench-a"}
    python = tree / ".venv" / "bin" / "python"
    log = (work / f"hub-{name}.log").open("wb")
    proc = subprocess.Popen(
        [str(python), "-m", "edge_agent", "hub", str(hub_file)],
        cwd=tree,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    if not wait_for_port(health, timeout_s=30):
        proc.kill()
        raise RuntimeError(f"the hub of {tree} did not start (see its log)")
    return proc, prefix


def drain(port: int, prefix: str, payloads: list[bytes], window: int) -> float:
    """Seconds until every alert has its result, at most ``window`` awaiting at a time."""
    import paho.mqtt.client as mqtt

    slots = threading.Semaphore(window)
    done = threading.Event()
    subscribed = threading.Event()
    answered: set[str] = set()
    lock = threading.Lock()

    def on_message(_c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        event_id = json.loads(message.payload)["event_id"]
        with lock:
            if event_id in answered:
                return
            answered.add(event_id)
            if len(answered) == len(payloads):
                done.set()
        slots.release()

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"bench-site-{random.randrange(1 << 30)}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(100)
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", port)
    client.subscribe(f"{prefix}/site-a/results", qos=1)
    client.loop_start()
    try:
        if not subscribed.wait(30):
            raise RuntimeError("no SUBACK")
        started = time.perf_counter()
        for payload in payloads:
            if not slots.acquire(timeout=120):
                raise RuntimeError(f"stalled at {len(answered)} answers")
            client.publish(f"{prefix}/site-a/alerts", payload, qos=1)
        if not done.wait(300):
            raise RuntimeError(f"only {len(answered)} of {len(payloads)} answered")
        return time.perf_counter() - started
    finally:
        client.disconnect()
        client.loop_stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--other", type=Path, help="another tree (with its .venv) to pair with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--alerts", type=int, default=10_000)
    args = parser.parse_args()
    trees = {"this": ROOT}
    if args.other is not None:
        trees["other"] = args.other.resolve()
    base = time.time_ns() + random.randrange(1 << 20) * 1_000_000
    payloads = [json.dumps(hub_event(i, base)).encode() for i in range(args.alerts)]
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="bench-hub-drain-") as tmp:
        work = Path(tmp)
        try:
            mqtt_port, mx_port = free_port(), free_port()
            conf = work / "mosquitto.conf"
            conf.write_text(
                f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                "max_queued_messages 100000\nmax_inflight_messages 100\nset_tcp_nodelay true\n"
            )
            binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
            procs.append(subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL))
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "edge_agent", "simulate", "maintainx"]
                    + ["--port", str(mx_port), "--api-key", "bench-a", "--org", "101"]
                    + ["--no-rate-limit", "--rate-limit", "100000000"],
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            for port in (mqtt_port, mx_port):
                if not wait_for_port(port, timeout_s=15):
                    raise RuntimeError(f"nothing listens on port {port}")
            hubs: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
            for name, tree in trees.items():
                hubs[name] = start_hub(
                    tree, work, name, mqtt_port, f"http://127.0.0.1:{mx_port}/v1"
                )
                procs.append(hubs[name][0])
            for name, (_, prefix) in hubs.items():
                primed = drain(mqtt_port, prefix, payloads, args.window)
                print(f"{name}: primed (work orders created) in {primed:.2f} s", flush=True)
            for round_ in range(args.rounds):
                # Alternate which hub goes first: neither always gets the warmer machine.
                order = list(hubs) if round_ % 2 == 0 else list(reversed(hubs))
                for name in order:
                    proc, prefix = hubs[name]
                    before = cpu_s(proc.pid)
                    wall = drain(mqtt_port, prefix, payloads, args.window)
                    used = cpu_s(proc.pid) - before
                    results[name].append((wall, used))
                    print(
                        f"round {round_ + 1} {name} ({trees[name].name}): {wall:.2f} s wall, "
                        f"hub CPU {used:.2f} s = {used / args.alerts * 1e6:.0f} us/alert",
                        flush=True,
                    )
        finally:
            for proc in reversed(procs):
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    for name, runs in results.items():
        walls = [w for w, _ in runs]
        cpus = [c for _, c in runs]
        print(
            f"{name} ({trees[name].name}), window {args.window}, {args.alerts:,} known alerts: "
            f"wall median {statistics.median(walls):.2f} s (range {min(walls):.2f}-"
            f"{max(walls):.2f}), hub CPU median {statistics.median(cpus):.2f} s (range "
            f"{min(cpus):.2f}-{max(cpus):.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
