"""Outbox and MQTT drain benchmark: `.venv/bin/python bench/outbox.py`.

Prints durable puts/s (single and batched, SQLite synchronous=FULL), put+ack/s, and the
time to drain a 10,000-event backlog to a local mosquitto at QoS 1 (every PUBACK awaited
before the outbox ack). Calls ``bench/outbox_maintainx.py:run_maintainx_drain()`` if it
exists. Goals (issue 5): >= 3,000 puts/s single, >= 30,000/s batched, 10,000 drained < 5 s.
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
        {"host": "127.0.0.1", "port": port, "inflight": inflight, "client_id": "bench-drain"}
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
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        work = Path(tmp)
        results = bench_puts(work)
        results.update(bench_mqtt(work))
    results.update(bench_maintainx())
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}))


if __name__ == "__main__":
    main()
