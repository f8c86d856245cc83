"""Drain a backlog of alarm activations from the outbox to the MaintainX emulator.

    .venv/bin/python bench/outbox_maintainx.py [ACTIVATIONS]

MaintainX allows 100 requests a minute per key; a 300-item backlog at that rate takes three
minutes, so the emulator here enforces the same kind of limit at 10x speed: 100 requests per
10 s window (600/min). The agent is *not* told the limit (it assumes its configured 100/min
until the first answer's ``X-Rate-Limit-*`` headers say otherwise). The figures show the
drain rate and prove that once the limit is known, MaintainX never has to answer 429.
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

from edge_agent.alerts import ALERT_SCHEMA, format_time_ns, make_alert_id, make_event_id  # noqa: E402
from edge_agent.config.models import SiteConfig  # noqa: E402
from edge_agent.forwarders.maintainx.forwarder import MaintainXForwarder  # noqa: E402
from edge_agent.outbox.store import Outbox  # noqa: E402
from edge_agent.simulators.maintainx import Emulator  # noqa: E402

KEY = "bench-key"
LIMIT = 100
WINDOW_S = 10.0


def _activation(n: int, asset_id: int) -> dict[str, object]:
    start_ns = time.time_ns() + n
    alert_id = make_alert_id("bench", f"rule-{n % 7}", start_ns)
    return {
        "schema": ALERT_SCHEMA,
        "site": "bench",
        "event_id": make_event_id(alert_id, "activated"),
        "alert_id": alert_id,
        "event": "activated",
        "time": format_time_ns(start_ns),
        "time_ns": start_ns,
        "rule": f"rule-{n % 7}",
        "sensor": "p101-temp",
        "asset": {"id": "p101", "name": "Pump P-101", "maintainx_id": asset_id},
        "value": 93.5,
        "peak": 93.5,
        "limit": 90.0,
        "unit": "degC",
        "priority": "MEDIUM",
        "notify": True,
        "work_order": {
            "title": f"Bench alarm {n}",
            "description": "Benchmark activation.",
            "priority": "MEDIUM",
            "categories": [],
            "assignees": [],
            "due_date": None,
        },
    }


async def _drain(activations: int, workdir: Path) -> dict[str, float]:
    with Emulator(keys={KEY: [1]}, rate_limit=LIMIT, rate_window_s=WINDOW_S) as mx:
        asset_id = mx.add_asset("Pump P-101")
        outbox = Outbox.open(workdir / "outbox", max_bytes=100_000_000)
        outbox.put_many([_activation(n, asset_id) for n in range(activations)])
        (workdir / "key").write_text(KEY)
        site = SiteConfig.model_validate(
            {
                "version": 1,
                "site": {"id": "bench"},
                "forwarding": {
                    "mode": "maintainx",
                    "maintainx": {"base_url": mx.url, "api_key": "file:key", "timeout": "5s"},
                },
            }
        )
        assert site.forwarding is not None and site.forwarding.maintainx is not None
        forwarder = MaintainXForwarder(
            site.forwarding.maintainx, site, outbox, workdir / "state", workdir, idle_s=0.05
        )
        started = time.monotonic()
        task = asyncio.create_task(forwarder.run())
        deadline = started + 170
        while forwarder.status.sent < activations and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        pacing_waits = forwarder.client.pacer.waits if forwarder.client else 0
        await forwarder.close()
        outbox.close()
        records = mx.requests
        work_orders = len(mx.work_orders)
    statuses = [r.status for r in records]
    remaining = [int(r.response_headers.get("X-Rate-Limit-Remaining", LIMIT)) for r in records]
    return {
        "activations": float(activations),
        "delivered": float(forwarder.status.sent),
        "work_orders": float(work_orders),
        "seconds": round(elapsed, 2),
        "activations_per_s": round(forwarder.status.sent / elapsed, 2),
        "allowed_per_s": LIMIT / WINDOW_S,
        "requests": float(len(records)),
        "http_429_total": float(statuses.count(429)),
        "http_429_after_limit_known": float(statuses[1:].count(429)),
        "min_remaining_seen": float(min(remaining)),
        "pacing_waits": float(pacing_waits),
    }


def run_maintainx_drain(activations: int = 300) -> dict[str, float]:
    """Drain ``activations`` to the emulator (100 req / 10 s) and return the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o700)
        return asyncio.run(_drain(activations, Path(tmp)))


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    figures = run_maintainx_drain(count)
    print(f"MaintainX drain: {count} activations, emulator limit {LIMIT} per {WINDOW_S:g} s")
    for name, value in figures.items():
        print(f"  {name:28} {value:g}")


if __name__ == "__main__":
    main()
