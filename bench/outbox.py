"""Outbox and MQTT drain benchmark: `.venv/bin/python bench/outbox.py [--hub-only]`.

Prints durable puts/s (single and batched, SQLite synchronous=FULL), put+ack/s, the
time to drain a 10,000-event backlog to a local mosquitto at QoS 1 (``confirm: broker``:
every PUBACK awaited before the outbox ack), and the same backlog confirmed by the hub
(``confirm: hub``: mosquitto, ``edge-agent hub`` and the MaintainX emulator as processes;
the events are first delivered once so that the hub knows them, then the same 10,000 are
drained again and each leaves the outbox on the hub's result, which the hub answers from
its record: nothing new is created). Calls
``bench/outbox_maintainx.py:run_maintainx_drain()`` if it exists. Goals (issue 5): >= 3,000
puts/s single, >= 30,000/s batched, 10,000 drained < 5 s; (issue 11) 10,000 confirmed by the
hub < 20 s.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ports import free_port, wait_for_port  # noqa: E402

from edge_agent.config.models import Mqtt  # noqa: E402
from edge_agent.forwarders.mqtt import MqttForwarder  # noqa: E402
from edge_agent.outbox import Outbox  # noqa: E402

CAP = 2_000_000_000


def event(i: int) -> dict[str, Any]:
    """An alarm-event-sized payload (~400 bytes of JSON)."""
    return {
        "schema": "edge-agent/alert@1",
        "site": "bench",
        "event_id": f"ev-{i:08d}",
        "alert_id": f"al-{i // 3:08d}",
        "event": "activated",
        "time": "2026-11-27T04:00:00.000Z",
        "rule": "pump-1-pressure-high",
        "sensor": "pump-1-pressure",
        "asset": {"id": "pump-1", "name": "Pump 1", "maintainx_id": 42},
        "value": 7.25,
        "limit": 6.5,
        "unit": "bar",
        "work_order": {"title": "Pump 1 pressure high", "priority": "HIGH"},
    }


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s ({count} in {seconds:.2f} s)"


def bench_puts(work: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with Outbox.open(work / "single", CAP) as outbox:
        n = 3000
        started = time.perf_counter()
        for i in range(n):
            outbox.put(event(i))
        results["put_single_per_s"] = n / (time.perf_counter() - started)
        print("durable put, single:      ", rate(n, time.perf_counter() - started))

        started = time.perf_counter()
        acked = 0
        while True:
            items = outbox.lease(1)
            if not items:
                break
            outbox.ack([items[0].id])
            acked += 1
        elapsed = time.perf_counter() - started
        results["lease_ack_single_per_s"] = acked / elapsed
        print("lease+ack, single:        ", rate(acked, elapsed))

        n = 1500
        started = time.perf_counter()
        for i in range(n):
            item_id = outbox.put(event(i))
            outbox.ack([item_id])
        elapsed = time.perf_counter() - started
        results["put_then_ack_single_per_s"] = n / elapsed
        print("put+ack, single:          ", rate(n, elapsed))

    with Outbox.open(work / "batched", CAP) as outbox:
        n, batch = 50_000, 100
        started = time.perf_counter()
        for start in range(0, n, batch):
            outbox.put_many([event(i) for i in range(start, start + batch)])
        elapsed = time.perf_counter() - started
        results["put_batched_per_s"] = n / elapsed
        print(f"durable put, batches of {batch}:", rate(n, elapsed))

        started = time.perf_counter()
        acked = 0
        while True:
            items = outbox.lease(batch)
            if not items:
                break
            outbox.ack([item.id for item in items])
            acked += len(items)
        elapsed = time.perf_counter() - started
        results["lease_ack_batched_per_s"] = acked / elapsed
        print(f"lease+ack, batches of {batch}:  ", rate(acked, elapsed))
    return results


def start_mosquitto(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n"
        "max_inflight_messages 100\nset_tcp_nodelay true\n"
    )
    process = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    if wait_for_port(port, timeout_s=10):
        return process, port
    process.kill()
    raise RuntimeError("mosquitto did not start")


async def drain_to_mqtt(outbox: Outbox, port: int, backlog: int, inflight: int) -> float:
    config = Mqtt.model_validate(
        {
            "host": "127.0.0.1",
            "port": port,
            "inflight": inflight,
            "client_id": "bench-drain",
            "confirm": "broker",
        }
    )
    forwarder = MqttForwarder(config, "bench", outbox, ROOT, idle_poll_s=0.01)
    started = time.perf_counter()
    task = asyncio.create_task(forwarder.run())
    while outbox.stats().depth > 0:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert forwarder.status.sent == backlog, forwarder.status
    return elapsed


def bench_mqtt(work: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    process, port = start_mosquitto(work)
    try:
        for inflight in (20, 100):
            backlog = 10_000
            with Outbox.open(work / f"drain-{inflight}", CAP) as outbox:
                for start in range(0, backlog, 500):
                    outbox.put_many([event(i) for i in range(start, start + 500)])
                elapsed = asyncio.run(drain_to_mqtt(outbox, port, backlog, inflight))
            results[f"mqtt_drain_10000_inflight_{inflight}_s"] = elapsed
            print(
                f"drain 10,000 to mosquitto, QoS 1, inflight {inflight}:",
                f"{elapsed:.2f} s ({backlog / elapsed:,.0f}/s, connect included)",
            )
    finally:
        process.kill()
        process.wait()
    return results


def hub_event(i: int, base: int) -> dict[str, Any]:
    """A valid alert message (the hub validates what it reads), one alert per event."""
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


async def drain_confirmed(
    outbox: Outbox, port: int, backlog: int, max_awaiting: int, limit_s: float
) -> tuple[float, dict[str, Any]]:
    """Drain the outbox with ``confirm: hub`` until nothing is queued or awaiting."""
    config = Mqtt.model_validate(
        {
            "host": "127.0.0.1",
            "port": port,
            "inflight": 100,
            "client_id": "bench-confirmed",
            "confirm": "hub",
            "result_timeout": "5s",
            "result_timeout_max": "20s",
            "max_awaiting": max_awaiting,
        }
    )
    forwarder = MqttForwarder(config, "site-a", outbox, ROOT, idle_poll_s=0.01)
    started = time.perf_counter()
    task = asyncio.create_task(forwarder.run())
    while forwarder.status.sent < backlog and time.perf_counter() - started < limit_s:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    await forwarder.close()
    left = outbox.stats().depth + outbox.awaiting_count()
    hub = forwarder.hub_status
    return elapsed, {"left": left, "resends": hub.resends, "sent": forwarder.status.sent}


def start_hub_peers(work: Path, procs: list[subprocess.Popen[bytes]]) -> int:
    """mosquitto, the MaintainX emulator and ``edge-agent hub`` (site-a) as processes,
    appended to ``procs`` as they start (the hub last; the caller stops them, even when one
    fails to start); returns the MQTT port."""
    import os

    from ruamel.yaml import YAML

    mqtt_port, mx_port, health_port = free_port(), free_port(), free_port()
    conf = work / "hub-mosquitto.conf"
    conf.write_text(
        f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 100000\nmax_inflight_messages 100\nset_tcp_nodelay true\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_KEY_A": "bench-a"}
    hub_file = work / "hub.yaml"
    with hub_file.open("w") as handle:
        YAML().dump(
            {
                "hub": {"id": "bench-hub", "group": "bench"},
                "broker": {"host": "127.0.0.1", "port": mqtt_port},
                "sites": {"site-a": {"api_key": "${BENCH_KEY_A}", "organization_id": 101}},
                "maintainx": {
                    "base_url": f"http://127.0.0.1:{mx_port}/v1",
                    "rate_limit": 100_000_000,
                },
                "dedup": {"backend": "sqlite"},
                "state_dir": str(work / "hub-state"),
                "health": {"listen": f"127.0.0.1:{health_port}"},
                "logging": {"level": "warning"},
            },
            handle,
        )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    procs.append(subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL))
    simulate = [sys.executable, "-m", "edge_agent", "simulate", "maintainx"]
    simulate += ["--port", str(mx_port), "--api-key", "bench-a", "--org", "101"]
    simulate += ["--no-rate-limit", "--rate-limit", "100000000"]
    procs.append(
        subprocess.Popen(simulate, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    )
    for port in (mqtt_port, mx_port):
        if not wait_for_port(port, timeout_s=15):
            raise RuntimeError(f"nothing listens on port {port}")
    with (work / "hub.log").open("wb") as log:
        hub = [sys.executable, "-m", "edge_agent", "hub", str(hub_file)]
        procs.append(subprocess.Popen(hub, env=env, stdout=log, stderr=subprocess.STDOUT))
    if not wait_for_port(health_port, timeout_s=30):
        raise RuntimeError("the hub did not start")
    return mqtt_port


def bench_hub_confirmed(work: Path, backlog: int = 10_000) -> dict[str, Any]:
    """The 10,000-event backlog confirmed by the hub's results (see the module doc)."""
    import random

    results: dict[str, Any] = {}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        mqtt_port = start_hub_peers(work, procs)
        # Now plus a random offset (new alert ids every run): the hub refuses an alert
        # time outside 2000..2100, and a random time since 1970 mostly was.
        base = time.time_ns() + random.randrange(1 << 20) * 1_000_000
        events = [hub_event(i, base) for i in range(backlog)]
        # First delivery: the hub creates the work orders and records every event.
        with Outbox.open(work / "hub-prime", CAP) as outbox:
            outbox.put_many(events)
            elapsed, info = asyncio.run(drain_confirmed(outbox, mqtt_port, backlog, 100, 600))
        results["hub_first_delivery_10000_s"] = elapsed
        print(f"first delivery of {backlog:,} through the hub (creates):", f"{elapsed:.2f} s", info)
        # The measured drains: the same events again, known to the hub.
        for max_awaiting in (20, 100, 1000):
            with Outbox.open(work / f"hub-known-{max_awaiting}", CAP) as outbox:
                outbox.put_many(events)
                elapsed, info = asyncio.run(
                    drain_confirmed(outbox, mqtt_port, backlog, max_awaiting, 120)
                )
            results[f"hub_confirmed_drain_10000_max_awaiting_{max_awaiting}_s"] = elapsed
            print(
                f"drain {backlog:,} confirmed by the hub (known), max_awaiting {max_awaiting}:",
                f"{elapsed:.2f} s ({backlog / elapsed:,.0f}/s)",
                info,
            )
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return results


def bench_maintainx() -> dict[str, Any]:
    path = ROOT / "bench" / "outbox_maintainx.py"
    if not path.exists():
        print("MaintainX drain: bench/outbox_maintainx.py not present, skipped")
        return {}
    spec = importlib.util.spec_from_file_location("outbox_maintainx", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result: dict[str, Any] = module.run_maintainx_drain()
    print("MaintainX drain:", json.dumps(result))
    return result


def main() -> None:
    hub_only = "--hub-only" in sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        work = Path(tmp)
        results = {} if hub_only else bench_puts(work)
        if not hub_only:
            results.update(bench_mqtt(work))
        results.update(bench_hub_confirmed(work))
    if not hub_only:
        results.update(bench_maintainx())
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}))


if __name__ == "__main__":
    main()
