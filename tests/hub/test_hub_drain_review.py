"""Review of the hub's side of the confirmed drain (issue 16, fifth pass): the gathered
store calls of one loop pass under a store that cannot commit, with the real hub, broker
and MaintainX emulator. What must hold: no answer before its record is committed, and
every alert becomes exactly one work order once the store commits again."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

from edge_agent.hub.app import Hub
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker
from tests.hub.conftest import Site, async_wait_until, hub_dict, make_alert, start_hub


def _ours(mx: Emulator, ids: set[str]) -> list[dict[str, Any]]:
    return [wo for wo in mx.work_orders if (wo.get("externalData") or {}).get("alert_id") in ids]


async def test_a_burst_under_a_locked_store_is_answered_only_once_committed(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list[Hub]
) -> None:
    """Another process holds the hub's SQLite file (SQLITE_BUSY past the busy timeout) while
    a burst arrives: every gathered call of the burst fails, none is answered ``ok`` or
    ``parked`` (nothing was committed), nothing is acknowledged; once the file is free, the
    tries again of the unacknowledged messages make each alert exactly one work order."""
    data = hub_dict(mosquitto, emulator.url, tmp_path / "s")
    hub = await start_hub(data, tmp_path)
    running_hubs.append(hub)
    site = Site(mosquitto)
    site.subscribe("edge/v1/site-a/results")
    blocker = sqlite3.connect(hub.config.sqlite_path(tmp_path), isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # the write lock, held past the 5 s busy timeout
        base = random.randrange(1 << 40)
        burst = [make_alert("site-a", base + n) for n in range(8)]
        site.publish_many([("edge/v1/site-a/alerts", json.dumps(m).encode()) for m in burst])
        assert hub.consumer is not None
        await async_wait_until(
            lambda: hub.consumer is not None and hub.consumer.stats.store_errors >= 8,
            30,
            "the burst's store calls to fail",
        )
        assert site.results() == []  # nothing answered: nothing was committed
        assert _ours(emulator, {m["alert_id"] for m in burst}) == []
        blocker.execute("ROLLBACK")
        ids = {m["alert_id"] for m in burst}
        await async_wait_until(
            lambda: (
                {r["event_id"] for r in site.results() if r["status"] == "ok"}
                == {m["event_id"] for m in burst}
            ),
            60,
            "every alert answered ok",
        )
        await asyncio.sleep(0.5)  # any late duplicate create would show now
        orders = _ours(emulator, ids)
        assert len(orders) == len(burst)
        assert {wo["externalData"]["alert_id"] for wo in orders} == ids
        assert hub.store is not None and hub.store.failure() is None
    finally:
        blocker.close()
        site.close()
