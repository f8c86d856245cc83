"""A create that lands after its client gave up makes no second work order (issue 22).

The fault campaign's finding: a slow link held one replica's create past its timeout; the
event was parked, the other replica took it at once, looked the work order up before the
slow create had landed, found nothing and created a second one. A request whose outcome is
unknown now rests (three client timeouts) before anyone tries it again.

Two replicas share one store (PostgreSQL, or one SQLite file when PostgreSQL is down) and an
emulator whose writes land ``LATE_S`` after they are sent, past the hubs' timeout."""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.hub.app import Hub
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker
from tests.hub.conftest import (
    KEY_A,
    KEY_B,
    PG_DSN,
    Site,
    async_wait_until,
    hub_dict,
    make_alert,
    pg_available,
    start_hub,
)

TIMEOUT_S = 0.4
LATE_S = 0.8  # the create lands here, after the timeout and before the hold (3 x 0.4 s) ends


@pytest.fixture
def slow_mx() -> Iterator[Emulator]:
    with Emulator(
        keys={KEY_A: [101], KEY_B: [202]}, rate_limit=1_000_000, rate_limiting=False
    ) as mx:
        yield mx


@pytest.fixture(params=["sqlite", "postgres"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "sqlite":
        yield {"backend": "sqlite", "path": str(tmp_path / "shared-hub.sqlite3")}
        return
    why = pg_available()
    if why is not None:
        pytest.skip(why)
    import uuid

    import psycopg

    schema = f"hubtest_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    os.environ["HUB_TEST_PG_DSN"] = PG_DSN
    try:
        yield {"backend": "postgres", "dsn": "${HUB_TEST_PG_DSN}", "table_prefix": f"{schema}.hub_"}
    finally:
        os.environ.pop("HUB_TEST_PG_DSN", None)
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


async def test_a_create_that_lands_late_is_found_not_repeated(
    mosquitto: Broker,
    slow_mx: Emulator,
    tmp_path: Path,
    running_hubs: list[Hub],
    shared_store: dict[str, Any],
) -> None:
    group = f"late{random.randrange(1 << 30)}"
    hubs = []
    for name in ("hub-1", "hub-2"):
        data = hub_dict(
            mosquitto, slow_mx.url, tmp_path / name, hub_id=name, group=group, dedup=shared_store
        )
        data["maintainx"]["timeout"] = f"{int(TIMEOUT_S * 1000)}ms"
        data["hub"]["retry_interval"] = "100ms"  # the other replica looks at once
        hubs.append(await start_hub(data, tmp_path))
        running_hubs.append(hubs[-1])
    slow_mx.faults.latency_s = LATE_S
    alert = make_alert("site-a", random.randrange(1 << 40))
    site = Site(mosquitto)
    try:
        site.publish("edge/v1/site-a/alerts", json.dumps(alert).encode())
        # The create timed out and its event is parked: from now on MaintainX is quick, so
        # the other replica's lookup would run before the slow create lands.
        await async_wait_until(
            lambda: sum(s.counters.parked for h in hubs for s in h.sites.values()) >= 1,
            10,
            "the timed-out create parked",
        )
        slow_mx.faults.latency_s = 0.0
        await async_wait_until(
            lambda: any(s.counters.work_orders_created for h in hubs for s in h.sites.values()),
            20,
            "the work order confirmed",
        )
        await asyncio.sleep(3 * TIMEOUT_S)  # a second create, if one was sent, has landed
        mine = [
            wo
            for wo in slow_mx.work_orders
            if (wo.get("externalData") or {}).get("alert_id") == alert["alert_id"]
        ]
        actions = [dict(s.counters.actions) for h in hubs for s in h.sites.values()]
        assert len(mine) == 1, actions
        assert any(a.get("found") for a in actions), actions  # looked up, not created again
    finally:
        site.close()
