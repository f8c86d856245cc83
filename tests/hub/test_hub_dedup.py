"""One work order per alert: 1,000 alerts each delivered twice, in bursts, make exactly
1,000 work orders; two replicas sharing the load through PostgreSQL do the same."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from pathlib import Path

from edge_agent.hub.app import Hub
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker
from tests.hub.conftest import PG_DSN, Site, async_wait_until, hub_dict, make_alert, start_hub

N = 1000


def _bursts(base: int) -> tuple[list[tuple[str, bytes]], set[str]]:
    """Every alert twice; the second copies come in shuffled bursts of 100."""
    alerts = [make_alert("site-a" if i % 2 else "site-b", base + i) for i in range(N)]
    items = [(f"edge/v1/{m['site']}/alerts", json.dumps(m).encode()) for m in alerts]
    again = items[:]
    random.Random(base).shuffle(again)
    burst: list[tuple[str, bytes]] = []
    for start in range(0, N, 100):
        burst += items[start : start + 100] + again[start : start + 100]
    return burst, {m["alert_id"] for m in alerts}


def _created(mx: Emulator, ids: set[str]) -> Counter[str]:
    return Counter(
        wo["externalData"]["alert_id"]
        for wo in mx.work_orders
        if (wo.get("externalData") or {}).get("alert_id") in ids
    )


async def _settle(hubs: list[Hub], expected: int) -> None:
    """Every delivery handled, and nothing left parked (a site briefly blocked by a
    MaintainX hiccup parks alerts; the retry loop applies them)."""
    await async_wait_until(
        lambda: (
            sum(h.consumer.stats.finished for h in hubs if h.consumer) >= expected
            and all(h._queue.empty() for h in hubs)
        ),
        60,
        f"{expected} alerts handled",
    )
    for _ in range(600):
        counts = await asyncio.to_thread(hubs[0].store.pending_counts)
        if not counts:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"alerts still parked: {counts}")


async def test_thousand_alerts_twice_make_a_thousand_work_orders(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list
) -> None:
    hub = await start_hub(hub_dict(mosquitto, emulator.url, tmp_path / "state"), tmp_path)
    running_hubs.append(hub)
    items, ids = _bursts(random.randrange(1 << 40))
    site = Site(mosquitto)
    await asyncio.to_thread(site.publish_many, items)
    await async_wait_until(lambda: len(_created(emulator, ids)) == N, 60, "1000 work orders")
    await _settle([hub], 2 * N)
    created = _created(emulator, ids)
    assert len(created) == N and set(created.values()) == {1}
    duplicates = sum(s.counters.duplicates for s in hub.sites.values())
    created_count = sum(s.counters.work_orders_created for s in hub.sites.values())
    assert created_count == N, [
        (s.counters.actions, s.counters.parked, s.counters.duplicates) for s in hub.sites.values()
    ]
    assert duplicates == N
    site.close()


async def test_two_replicas_on_a_shared_subscription_with_postgres(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list, pg_schema: str
) -> None:
    dedup = {
        "backend": "postgres",
        "dsn": "${HUB_TEST_PG_DSN}",
        "table_prefix": f"{pg_schema}.hub_",
    }
    group = f"replicas{random.randrange(1 << 30)}"
    import os

    os.environ["HUB_TEST_PG_DSN"] = PG_DSN
    try:
        hubs = []
        for name in ("hub-1", "hub-2"):
            data = hub_dict(
                mosquitto, emulator.url, tmp_path / name, hub_id=name, group=group, dedup=dedup
            )
            hubs.append(await start_hub(data, tmp_path))
            running_hubs.append(hubs[-1])
        items, ids = _bursts(random.randrange(1 << 40))
        site = Site(mosquitto)
        await asyncio.to_thread(site.publish_many, items)
        await async_wait_until(lambda: len(_created(emulator, ids)) == N, 90, "1000 work orders")
        await _settle(hubs, 2 * N)
        created = _created(emulator, ids)
        assert len(created) == N and set(created.values()) == {1}
        # Both replicas took part in the work.
        assert all(h.consumer.stats.handled > 0 for h in hubs)
        site.close()
    finally:
        os.environ.pop("HUB_TEST_PG_DSN", None)
