"""`wake()` ends the forwarders' idle wait: the service calls it after every outbox put, so
an alert leaves at once instead of at the next poll. With an idle wait of a minute, only the
wake can make these deliveries happen within the tests' bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.forwarders.maintainx.forwarder import MaintainXForwarder
from edge_agent.outbox.store import Outbox
from edge_agent.simulators.maintainx import Emulator
from tests.maintainx.conftest import alert, site_config, wait_until, write_key
from tests.service.conftest import API_KEY

IDLE_S = 60.0


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox.open(tmp_path / "outbox", max_bytes=10_000_000, lease_s=30.0)
    yield box
    box.close()


async def test_maintainx_forwarder_delivers_on_wake_not_after_its_idle_wait(
    emulator: Emulator, outbox: Outbox, tmp_path: Path
) -> None:
    asset_id = emulator.add_asset("Pump P-101 (wake test)")
    site, config = site_config(write_key(tmp_path, API_KEY), base_url=emulator.url)
    forwarder = MaintainXForwarder(
        config, site, outbox, tmp_path / "state", tmp_path, idle_s=IDLE_S
    )
    task = asyncio.create_task(forwarder.run())
    try:
        # Connected, found the outbox empty: now in its (minute-long) idle wait.
        await wait_until(lambda: forwarder.status.connected, 10)
        await asyncio.sleep(0.2)
        for n in (1, 2):
            await asyncio.to_thread(outbox.put_many, [alert(n, asset_mx=asset_id)])
            forwarder.wake()
            await wait_until(lambda n=n: forwarder.status.sent == n, 10)
        assert {w["externalData"]["alert_id"] for w in emulator.work_orders} >= {
            alert(1)["alert_id"],
            alert(2)["alert_id"],
        }
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await forwarder.close()
