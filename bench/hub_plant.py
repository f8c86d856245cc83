"""Plant data through the hub (issue 14): `.venv/bin/python bench/hub_plant.py [--readings N]`.

A backlog of N run-hours readings (default 10,000; 10 meters of one site, dated within the
last hour) in the agent's plant-data outbox, drained by the plant MQTT sink
(``confirm: hub``, ``max_awaiting`` 500) through a local mosquitto to the hub (in this
process) and on to the MaintainX emulator with its ``/meterreadings`` limit on (100 requests
/ 60 s per key). Prints the time until every reading was confirmed, the requests made,
readings per request and the 429s MaintainX answered (the goal: none).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ports import free_port, wait_for_port  # noqa: E402

from edge_agent.alerts import format_time_ns  # noqa: E402
from edge_agent.config.models import Mqtt  # noqa: E402
from edge_agent.forwarders.plant_mqtt import plant_mqtt_forwarder  # noqa: E402
from edge_agent.hub.app import Hub  # noqa: E402
from edge_agent.hub.config import HubConfig  # noqa: E402
from edge_agent.outbox import Outbox  # noqa: E402
from edge_agent.simulators.maintainx import Emulator  # noqa: E402
from edge_agent.wire.plant import (  # noqa: E402
    AssetRef,
    MeterReadingMessage,
    MeterSpec,
    PmSpec,
    meter_reading_id,
)

KEY = "bench-plant-key"
METERS = 10


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


def backlog(outbox: Outbox, count: int, asset: int) -> None:
    start = time.time_ns() - 3600 * 1_000_000_000
    step = 3600 * 1_000_000_000 // max(1, count)
    payloads = []
    for i in range(count):
        meter = f"m{i % METERS}"
        at = start + i * step
        spec = MeterSpec(f"Bench {meter}", "Hours", "run_hours", pm=PmSpec(500.0, "PM"))
        payloads.append(
            MeterReadingMessage(
                site="bench",
                id=meter_reading_id("bench", meter, at),
                meter=meter,
                asset=AssetRef("P-1", "Pump", asset),
                maintainx_meter_id=None,
                meter_spec=spec,
                value=i / 100,
                time=format_time_ns(at),
                time_ns=at,
                kind="run_hours",
            ).to_json()
        )
    for first in range(0, len(payloads), 1000):
        outbox.put_many(payloads[first : first + 1000])


async def run(count: int) -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-hub-plant-"))
    broker, port = start_mosquitto(work)
    os.environ["BENCH_PLANT_KEY"] = KEY
    try:
        with Emulator(keys={KEY: [1]}, rate_limit=1_000_000) as mx:  # general limit off
            asset = mx.add_asset("Pump")
            outbox = Outbox.open(work / "plant-outbox", 2_000_000_000)
            backlog(outbox, count, asset)
            config = HubConfig.model_validate(
                {
                    "hub": {"id": "bench-hub", "group": "bench"},
                    "broker": {"host": "127.0.0.1", "port": port},
                    "sites": {"bench": {"api_key": "${BENCH_PLANT_KEY}"}},
                    "maintainx": {"base_url": mx.url, "rate_limit": 1_000_000},
                    "dedup": {"backend": "sqlite"},
                    "state_dir": str(work / "hub"),
                    "health": {"listen": f"127.0.0.1:{free_port()}"},
                }
            )
            hub = Hub(config, work)
            await hub.start()
            mqtt = Mqtt.model_validate(
                {
                    "host": "127.0.0.1",
                    "port": port,
                    "confirm": "hub",
                    "max_awaiting": 500,
                    "inflight": 100,
                    "result_timeout": "120s",
                }
            )
            sink = plant_mqtt_forwarder(mqtt, "bench", outbox, work, idle_poll_s=0.01)
            started = time.monotonic()
            task = asyncio.create_task(sink.run())
            try:
                while outbox.stats().depth or outbox.awaiting_count():
                    if time.monotonic() - started > 900:
                        print("not drained within 900 s", file=sys.stderr)
                        return 1
                    await asyncio.sleep(0.05)
                took = time.monotonic() - started
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await sink.close()
                await hub.close()
                outbox.close()
            posts = [
                r for r in mx.requests if r.method == "POST" and r.path.endswith("/meterreadings")
            ]
            refused = sum(1 for r in posts if r.status == 429)
            accepted = [r for r in posts if r.status == 201]
            readings = len(mx.readings)
            print(f"readings queued:             {count}")
            print(f"readings at MaintainX:       {readings}")
            print(f"drained and confirmed in:    {took:.1f} s")
            print(f"POST /meterreadings:         {len(posts)} ({refused} answered 429)")
            if accepted:
                print(f"readings per request:        {readings / len(accepted):.0f}")
            return 0 if readings == count and refused == 0 else 1
    finally:
        broker.kill()
        broker.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=10_000)
    args = parser.parse_args()
    return asyncio.run(run(args.readings))


if __name__ == "__main__":
    raise SystemExit(main())
