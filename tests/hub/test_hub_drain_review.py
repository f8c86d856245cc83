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


async def test_two_sites_racing_for_one_alert_id_in_one_burst_make_one_work_order(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list[Hub]
) -> None:
    """Two sites publish the same alert and event ids at once (site-b copying site-a's), 20
    pairs in one burst: both sites' calls meet in the same gathered batches (the two of a
    pair one after the other, under their alert's lock). The first use wins, the other is
    rejected ``foreign_id``; one work order per alert id, and nothing answered to the loser
    but the rejection."""
    hub = await start_hub(hub_dict(mosquitto, emulator.url, tmp_path / "s"), tmp_path)
    running_hubs.append(hub)
    site_a, site_b = Site(mosquitto), Site(mosquitto)
    site_a.subscribe("edge/v1/site-a/results")
    site_b.subscribe("edge/v1/site-b/results")
    try:
        base = random.randrange(1 << 40)
        pairs = []
        for n in range(20):
            original = make_alert("site-a", base + n)
            copy = dict(original, site="site-b")
            pairs.append((original, copy))
        infos = []
        for original, copy in pairs:
            infos.append(site_a.client.publish("edge/v1/site-a/alerts", json.dumps(original), 1))
            infos.append(site_b.client.publish("edge/v1/site-b/alerts", json.dumps(copy), 1))
        for info in infos:
            info.wait_for_publish(timeout=10)
        await async_wait_until(
            lambda: len(site_a.results()) + len(site_b.results()) >= 40, 30, "40 answers"
        )
        await asyncio.sleep(0.5)
        answers = site_a.results() + site_b.results()
        assert len(answers) == 40
        for original, _ in pairs:
            mine = [r for r in answers if r["event_id"] == original["event_id"]]
            assert sorted(r["status"] for r in mine) == ["ok", "rejected"], mine
            [lost] = [r for r in mine if r["status"] == "rejected"]
            assert lost["reason"] == "foreign_id" and lost.get("work_order_id") is None
        ids = {original["alert_id"] for original, _ in pairs}
        orders = _ours(emulator, ids)
        assert len(orders) == len(ids)  # one each, never two
    finally:
        site_a.close()
        site_b.close()
