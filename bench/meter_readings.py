"""Drain 10,000 queued meter readings to the MaintainX emulator on ``POST /meterreadings``.

    .venv/bin/python bench/meter_readings.py [READINGS] [--batch N]

The emulator enforces MaintainX's real limits: ``/meterreadings`` has its own bucket of 100
requests per 60 s per key, the other calls (the meters' and triggers' creation, lookups)
the general 100 per 60 s. The plant-data forwarder sends batches of up to 500 readings
(``--batch`` smaller to see the pacing spread requests over the window) and must never be
answered 429. It prints readings per request and the total time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge_agent.alerts import format_time_ns  # noqa: E402
from edge_agent.config.models import SiteConfig  # noqa: E402
from edge_agent.forwarders.maintainx.plant import PlantForwarder  # noqa: E402
from edge_agent.maintainx.meters import MAX_BATCH  # noqa: E402
from edge_agent.outbox.store import Outbox  # noqa: E402
from edge_agent.simulators.maintainx import Emulator  # noqa: E402
from edge_agent.wire.plant import (  # noqa: E402
    AssetRef,
    MeterReadingMessage,
    MeterSpec,
    PmSpec,
    meter_reading_id,
)

KEY = "bench-key"
METERS = 10
SECOND = 1_000_000_000


def _readings(count: int, asset_id: int) -> list[dict[str, object]]:
    """``count`` readings of 10 meters (5 counters with a PM, 5 gauges with a limit), one a
    second each over the last hours: a backlog after an outage inside the 3-day window."""
    start = time.time_ns() - (count // METERS + 1) * SECOND
    out: list[dict[str, object]] = []
    for n in range(count):
        meter = n % METERS
        at = start + (n // METERS) * SECOND
        gauge = meter >= METERS // 2
        spec = MeterSpec(
            f"bench-{meter}",
            "degC" if gauge else "Cycles",
            "gauge" if gauge else "counter",
            None if gauge else PmSpec(10_000.0, f"Bench PM {meter}"),
            90.0 if gauge else None,
        )
        out.append(
            MeterReadingMessage(
                site="bench",
                id=meter_reading_id("bench", f"bench-{meter}", at),
                meter=f"bench-{meter}",
                asset=AssetRef("P-101", "Pump P-101", asset_id),
                maintainx_meter_id=None,
                meter_spec=spec,
                value=20.0 + n % 7 if gauge else float(n // METERS),
                time=format_time_ns(at),
                time_ns=at,
                kind=spec.kind,
            ).to_json()
        )
    return out


async def _drain(count: int, batch: int, workdir: Path) -> dict[str, float]:
    with Emulator(keys={KEY: [1]}) as mx:  # real limits: 100 / 60 s, readings apart
        asset_id = mx.add_asset("Pump P-101")
        outbox = Outbox.open(workdir / "plant-outbox", max_bytes=500_000_000)
        outbox.put_many(_readings(count, asset_id))
        (workdir / "key").write_text(KEY)
        (workdir / "state").mkdir()
        site = SiteConfig.model_validate(
            {
                "version": 1,
                "site": {"id": "bench"},
                "forwarding": {
                    "mode": "maintainx",
                    "maintainx": {"base_url": mx.url, "api_key": "file:key", "timeout": "10s"},
                },
            }
        )
        assert site.forwarding is not None and site.forwarding.maintainx is not None
        forwarder = PlantForwarder(
            site.forwarding.maintainx,
            site,
            outbox,
            workdir / "state",
            workdir,
            idle_s=0.05,
            batch_size=batch,
        )
        started = time.monotonic()
        task = asyncio.create_task(forwarder.run())
        deadline = started + 600
        while outbox.stats().depth and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        pacing_waits = forwarder.client.endpoint_pacers["meterreadings"].waits
        await forwarder.close()
        left = outbox.stats().depth
        outbox.close()
        records = mx.requests
        received = len(mx.readings)
        meters = len(mx.store.all_meters())
        triggers = len(mx.store.all_meter_triggers())
    posts = [r for r in records if r.method == "POST" and r.path.endswith("/meterreadings")]
    return {
        "readings_queued": float(count),
        "readings_received": float(received),
        "left_in_outbox": float(left),
        "seconds": round(elapsed, 2),
        "readings_per_s": round(received / elapsed, 1),
        "meterreadings_requests": float(len(posts)),
        "readings_per_request": round(received / max(1, len(posts)), 1),
        "requests_total": float(len(records)),
        "http_429_total": float(sum(r.status == 429 for r in records)),
        "meters_created": float(meters),
        "triggers_created": float(triggers),
        "readings_pacing_waits": float(pacing_waits),
    }


def run_meter_readings(count: int = 10_000, batch: int = MAX_BATCH) -> dict[str, float]:
    """Drain ``count`` queued readings to the emulator and return the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o700)
        return asyncio.run(_drain(count, batch, Path(tmp)))


def main() -> None:
    args = sys.argv[1:]
    batch = MAX_BATCH
    if "--batch" in args:
        at = args.index("--batch")
        batch = int(args[at + 1])
        del args[at : at + 2]
    count = int(args[0]) if args else 10_000
    figures = run_meter_readings(count, batch)
    print(f"Meter readings drain: {count} queued, batches of up to {batch}, real limits")
    for name, value in figures.items():
        print(f"  {name:26} {value:g}")


if __name__ == "__main__":
    main()
