"""Hub throughput: alerts per second turned into MaintainX work orders, and the hub's memory.

Everything runs as separate processes on loopback: mosquitto, the MaintainX emulator
(``edge-agent simulate maintainx``, rate limiting off), one or two ``edge-agent hub``
replicas (SQLite for one; PostgreSQL for two, shared subscription), and this script, which
publishes the alerts as fast as the broker takes them and counts the hub's ``created``
results. Run: ``.venv/bin/python bench/hub.py [--alerts N]``. PostgreSQL is taken from
``EDGE_AGENT_TEST_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``); without
it the two-replica run is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ports import free_port, wait_for_port  # noqa: E402

from edge_agent.alerts import ALERT_SCHEMA, format_time_ns, make_alert_id, make_event_id  # noqa: E402

PG_DSN = os.environ.get("EDGE_AGENT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def wait_port(port: int) -> None:
    if not wait_for_port(port, timeout_s=15):
        raise SystemExit(f"nothing listens on port {port}")


def alert(site: str, n: int, base: int) -> bytes:
    alert_id = make_alert_id(site, f"rule-{n % 100}", base + n)
    return json.dumps(
        {
            "schema": ALERT_SCHEMA,
            "site": site,
            "event_id": make_event_id(alert_id, "activated"),
            "alert_id": alert_id,
            "event": "activated",
            "time": format_time_ns(base + n),
            "time_ns": base + n,
            "rule": f"rule-{n % 100}",
            "sensor": "pressure",
            "asset": {"id": f"pump-{n % 7}", "name": "Pump", "maintainx_id": None},
            "value": 9.5,
            "peak": 9.9,
            "limit": 8.0,
            "unit": "bar",
            "priority": "HIGH",
            "notify": True,
            "work_order": {
                "title": f"High pressure {n}",
                "description": "bench",
                "priority": "HIGH",
                "categories": [],
                "assignees": [],
                "due_date": None,
            },
        }
    ).encode()


def rss_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pg_ok() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_DSN, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


def run(replicas: int, alerts: int, workdir: Path, args_concurrency: int = 16) -> dict[str, float]:
    mqtt_port, mx_port = free_port(), free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 1000000\nmax_inflight_messages 100\n"
    )
    procs: list[subprocess.Popen[bytes]] = []
    schema = f"hubbench_{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "BENCH_KEY_A": "bench-a",
        "BENCH_KEY_B": "bench-b",
        "BENCH_PG_DSN": PG_DSN,
    }
    try:
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        procs.append(subprocess.Popen([mosquitto, "-c", str(conf)], stderr=subprocess.DEVNULL))
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "edge_agent",
                    "simulate",
                    "maintainx",
                    "--port",
                    str(mx_port),
                    "--api-key",
                    "bench-a",
                    "--api-key",
                    "bench-b",
                    "--org",
                    "101",
                    "--no-rate-limit",
                    "--rate-limit",
                    "100000000",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_port(mqtt_port)
        wait_port(mx_port)
        if replicas > 1:
            import psycopg

            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            dedup = {
                "backend": "postgres",
                "dsn": "${BENCH_PG_DSN}",
                "table_prefix": f"{schema}.hub_",
            }
        else:
            dedup = {"backend": "sqlite"}
        hubs = []
        for index in range(replicas):
            data = {
                "hub": {"id": f"bench-{index}", "group": "bench", "concurrency": args_concurrency},
                "broker": {"host": "127.0.0.1", "port": mqtt_port},
                "sites": {
                    "site-a": {"api_key": "${BENCH_KEY_A}", "organization_id": 101},
                    "site-b": {"api_key": "${BENCH_KEY_B}", "organization_id": 101},
                },
                "maintainx": {
                    "base_url": f"http://127.0.0.1:{mx_port}/v1",
                    "rate_limit": 100000000,
                },
                "dedup": dedup,
                "state_dir": str(workdir / f"state-{index}"),
                "health": {"listen": f"127.0.0.1:{free_port()}"},
                "logging": {"level": "warning"},
            }
            path = workdir / f"hub-{index}.yaml"
            with path.open("w") as handle:
                YAML().dump(data, handle)
            log = (workdir / f"hub-{index}.log").open("wb")
            proc = subprocess.Popen(
                [sys.executable, "-m", "edge_agent", "hub", str(path)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            procs.append(proc)
            hubs.append(proc)
        time.sleep(1.5)  # the replicas connect and subscribe

        created = 0
        done = threading.Event()
        lock = threading.Lock()

        def on_message(client: object, userdata: object, message: paho.MQTTMessage) -> None:
            nonlocal created
            body = json.loads(message.payload)
            if body.get("action") == "created":
                with lock:
                    created += 1
                    if created >= alerts:
                        done.set()

        sub = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id="bench-results", protocol=paho.MQTTv5
        )
        sub.on_message = on_message
        sub.connect("127.0.0.1", mqtt_port)
        sub.subscribe("edge/v1/+/results", qos=1)
        sub.loop_start()
        pub = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id="bench-sites", protocol=paho.MQTTv5
        )
        pub.max_inflight_messages_set(100)
        pub.connect("127.0.0.1", mqtt_port)
        pub.loop_start()
        time.sleep(0.3)
        # Unique episodes at plausible times (the alert schema takes 2000..2100 only).
        base = time.time_ns() - random.randrange(1 << 50)
        payloads = [
            (f"edge/v1/{s}/alerts", alert(s, i, base))
            for i in range(alerts)
            for s in ["site-a" if i % 2 else "site-b"]
        ]
        started = time.monotonic()
        cpu_before = sum(cpu_s(proc.pid) for proc in hubs)
        mx_cpu_before = cpu_s(procs[1].pid)
        peak = [0.0] * replicas
        infos = [pub.publish(topic, body, qos=1) for topic, body in payloads]
        while not done.wait(0.2):
            for i, proc in enumerate(hubs):
                peak[i] = max(peak[i], rss_mib(proc.pid)[1])
            if time.monotonic() - started > 150:
                break
        elapsed = time.monotonic() - started
        hub_cpu = sum(cpu_s(proc.pid) for proc in hubs) - cpu_before
        mx_cpu = cpu_s(procs[1].pid) - mx_cpu_before
        for info in infos[-10:]:
            info.wait_for_publish(5)
        rss = [rss_mib(proc.pid) for proc in hubs]
        sub.loop_stop()
        pub.loop_stop()
        return {
            "replicas": replicas,
            "alerts": alerts,
            "created": created,
            "seconds": elapsed,
            "work_orders_per_s": created / elapsed,
            "per_replica_per_s": created / elapsed / replicas,
            "hub_cpu_ms_per_wo": 1000 * hub_cpu / max(1, created),
            "mx_cpu_ms_per_wo": 1000 * mx_cpu / max(1, created),
            "rss_mib": max(r[0] for r in rss),
            "peak_rss_mib": max(max(r[1] for r in rss), *peak),
        }
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if replicas > 1:
            import psycopg

            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16, help="per replica (hub default)")
    parser.add_argument("--replicas", type=int, choices=(1, 2), help="only this run")
    args = parser.parse_args()
    runs = [1, 2] if pg_ok() else [1]
    if args.replicas is not None:
        runs = [r for r in runs if r == args.replicas]
    if 2 not in runs and args.replicas != 1:
        print(f"PostgreSQL not reachable at {PG_DSN}: two-replica run skipped")
    for replicas in runs:
        with tempfile.TemporaryDirectory() as tmp:
            figures = run(replicas, args.alerts, Path(tmp), args.concurrency)
        print(
            f"{figures['replicas']} replica(s), {'postgres' if replicas > 1 else 'sqlite'}: "
            f"{figures['created']}/{figures['alerts']} work orders in {figures['seconds']:.2f} s = "
            f"{figures['work_orders_per_s']:.0f} work orders/s "
            f"({figures['per_replica_per_s']:.0f}/s per replica); hub CPU "
            f"{figures['hub_cpu_ms_per_wo']:.2f} ms per work order (emulator "
            f"{figures['mx_cpu_ms_per_wo']:.2f} ms); hub RSS "
            f"{figures['rss_mib']:.0f} MiB (peak {figures['peak_rss_mib']:.0f} MiB)",
            flush=True,
        )


if __name__ == "__main__":
    main()
