"""Direct mode: the alert forwarder and the plant-data forwarder use the same MaintainX key
(its general budget, 100 requests a minute). A backlog of asset status changes must never
make an alarm's work order wait: the plant data takes only its share of every window.
Counted at the emulator (its real 100 / 60 s limit), no timing asserted."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from edge_agent.forwarders.maintainx.forwarder import MaintainXForwarder
from edge_agent.forwarders.maintainx.plant import RATE_SHARE
from edge_agent.outbox.store import Outbox
from edge_agent.simulators.maintainx import Emulator
from tests.maintainx.conftest import SITE_KEY, alert, site_config, stop, wait_until, write_key
from tests.meters.plant_data import KEY, SECOND, running_forwarder, status

LIMIT = 100


def _plant_requests(mx: Emulator) -> list[int]:
    """The ``X-Rate-Limit-Remaining`` the key had after each plant-data request."""
    return [
        int(r.response_headers["X-Rate-Limit-Remaining"])
        for r in mx.requests
        if "/assets/" in r.path and r.status in (200, 201)
    ]


async def test_a_plant_backlog_never_makes_an_alarm_wait(tmp_path: Path) -> None:
    assert KEY == SITE_KEY  # one key for both forwarders, as in direct mode
    now = time.time_ns() - 3600 * SECOND
    plant_dir = tmp_path / "plant"
    plant_dir.mkdir()
    outbox = Outbox.open(tmp_path / "outbox", max_bytes=50_000_000, lease_s=30.0)
    with Emulator(keys={KEY: [1]}, rate_limit=LIMIT, rate_window_s=60.0) as mx:
        asset = mx.add_asset("Pump P-101")
        plant_box = Outbox.open(plant_dir / "plant-outbox", max_bytes=50_000_000, lease_s=30.0)
        # 150 changes: 300 requests, three windows' worth of the whole key.
        plant_box.put_many(
            [status(n % 2 == 1, now + n * 60 * SECOND, asset_mx=asset) for n in range(150)]
        )
        async with running_forwarder(plant_dir, plant_box, mx.url) as plant:
            # The plant data has spent the half of its share it spends at once; from here
            # it spreads the rest over the window (as a backlog does).
            share = int(LIMIT * RATE_SHARE)
            await wait_until(lambda: len(_plant_requests(mx)) >= share // 2, timeout_s=60.0)
            outbox.put_many([alert(n) for n in range(3)])
            site, mx_config = site_config(
                write_key(tmp_path, KEY), base_url=mx.url, rate_limit=LIMIT
            )
            forwarder = MaintainXForwarder(
                mx_config, site, outbox, tmp_path / "state", tmp_path, idle_s=0.02
            )
            task = asyncio.create_task(forwarder.run())
            try:
                await wait_until(lambda: len(mx.work_orders) == 3, timeout_s=60.0)
                assert forwarder.client is not None
                alert_waits = forwarder.client.pacer.waits
            finally:
                await stop(forwarder, task)
            backlog = plant_box.stats().depth
            plant_429 = plant.status.rate_limited
        plant_box.close()
        outbox.close()
        records = list(mx.requests)
        remaining_after_plant = _plant_requests(mx)
    # The work orders were made while the backlog was still there, in the first window.
    assert backlog > 100
    assert [r.status for r in records].count(429) == 0 and plant_429 == 0
    # The alert forwarder never had to wait for the plant data: it found the key's budget
    # above the half it spends at once.
    assert alert_waits == 0
    # The plant data left the alerts their part of every window.
    assert min(remaining_after_plant) >= LIMIT - int(LIMIT * RATE_SHARE)
    work_order_posts = [n for n, r in enumerate(records) if r.path.endswith("/workorders")]
    plant_before = sum(1 for r in records[: work_order_posts[-1]] if "/assets/" in r.path)
    assert plant_before <= int(LIMIT * RATE_SHARE)
