"""The hub's side of the alarm lifecycle (issue 13): the events it keeps (on both store
backends), the first-time-fix rate and time to normal beside MTTR, and a lifecycle message
naming a work order the hub did not make for its site (applied nowhere)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from edge_agent.alerts import make_event_id
from edge_agent.hub.kpis import kpis_json, kpis_table
from edge_agent.hub.store import AlertRecord, HubStore
from edge_agent.hub.store_lifecycle import AlarmEventRecord
from edge_agent.hub.store_sqlite import SqliteHubStore
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker
from tests.hub.conftest import PG_DSN, T0, Site, async_wait_until, hub_dict, make_alert, start_hub

S = 1_000_000_000


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> HubStore:
    if request.param == "sqlite":
        made: HubStore = SqliteHubStore(tmp_path / "hub.sqlite3")
    else:
        schema = request.getfixturevalue("pg_schema")
        from edge_agent.hub.store_postgres import PostgresHubStore

        made = PostgresHubStore(PG_DSN, pool_size=2, table_prefix=f"{schema}.hub_")
    request.addfinalizer(made.close)
    return made


def _event(alert_id: str, kind: str, work_order_id: int | None, at_s: int, n: int = 0) -> Any:
    return AlarmEventRecord(
        site="site-a",
        event_id=f"{alert_id}:{kind}:{n}",
        alert_id=alert_id,
        asset="pump-1",
        rule="rule-1",
        event=kind,
        work_order_id=work_order_id,
        by="ana" if kind == "shelved" else None,
        reason="valve swap" if kind == "shelved" else None,
        time_ns=T0 + at_s * S,
    )


async def test_first_time_fix_and_time_to_normal_per_site_and_asset(store: HubStore) -> None:
    # Three episodes on pump-1: raised at 0, 100 and 200 s, back to normal 60, 160 and
    # 290 s later (mean 70 s). Work order 11 verified; 12 reopened then verified (not a
    # first-time fix); 13 reopened.
    for n, (raised, cleared) in enumerate(((0, 60), (100, 160), (200, 290))):
        alert_id = f"alert-{n}"
        store.record_alert(AlertRecord("site-a", alert_id, "pump-1", "rule-1", T0 + raised * S))
        store.record_alarm_event(_event(alert_id, "cleared", None, cleared))
    for record in (
        _event("alert-0", "verified", 11, 70),
        _event("alert-1", "reopened", 12, 170),
        _event("alert-1", "verified", 12, 180),
        _event("alert-2", "reopened", 13, 300),
        _event("alert-2", "shelved", None, 310),
    ):
        store.record_alarm_event(record)
        store.record_alarm_event(record)  # a redelivery keeps nothing twice
    rows = {(r.site, r.asset): r for r in store.kpis()}
    row = rows[("site-a", "pump-1")]
    assert (row.repairs_judged, row.first_time_fixes) == (3, 1)
    assert row.first_time_fix_rate == pytest.approx(1 / 3)
    assert row.time_to_normal_s == pytest.approx(70.0)
    assert row.alerts_raised == 3
    # Beside MTTR in the table and the JSON.
    table = kpis_table([row])
    assert "FIRST FIX" in table and "33% (1/3)" in table and "TO NORMAL" in table
    assert "70s" in table.splitlines()[1]
    assert json.loads(kpis_json([row]))["kpis"][0]["first_time_fix_rate"] == pytest.approx(1 / 3)
    # A window after the episodes: none of them.
    later = {(r.site, r.asset): r for r in store.kpis(since_ns=T0 + 1000 * S)}
    assert (
        later.get(("site-a", "pump-1")) is None or later[("site-a", "pump-1")].repairs_judged == 0
    )


async def test_lifecycle_events_are_kept_and_a_foreign_work_order_is_not_touched(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list[Any]
) -> None:
    hub = await start_hub(hub_dict(mosquitto, emulator.url, tmp_path / "s"), tmp_path)
    running_hubs.append(hub)
    site = Site(mosquitto)
    site.subscribe("edge/v1/+/results")
    n = random.randrange(1 << 40)
    activated = make_alert("site-a", n)
    site.publish("edge/v1/site-a/alerts", activated)
    await async_wait_until(lambda: len(site.results()) == 1, 20, "the work order")
    work_order_id = site.results()[0]["work_order_id"]
    # Site B's work order, and an id nobody has: a site reaches only its own.
    site.publish("edge/v1/site-b/alerts", make_alert("site-b", n + 1))
    await async_wait_until(lambda: len(site.results()) == 2, 20, "site B's work order")
    foreign = site.results()[1]["work_order_id"]

    def lifecycle(kind: str, named: int | None, **extra: Any) -> dict[str, Any]:
        message = make_alert("site-a", n, kind, **extra)
        message["event_id"] = make_event_id(message["alert_id"], kind, "t")
        if named is not None:
            message["work_order_id"] = named
        return message

    before = len(emulator.comments(work_order_id))
    messages = [
        lifecycle("acknowledged", work_order_id, by="ana", reason="on it"),
        lifecycle("verified", 2**62, comment="verified: pressure normal"),
        lifecycle("reopened", foreign, comment="pressure still high"),
        lifecycle("shelved", None, by="ana", reason="sensor swap"),
    ]
    for message in messages:
        site.publish("edge/v1/site-a/alerts", message)
    await async_wait_until(lambda: len(site.results()) == 6, 20, "the answers")
    actions = {r["event_id"]: r.get("action") for r in site.results()}
    assert [actions[m["event_id"]] for m in messages] == [
        "recorded",
        "unknown_work_order",
        "unknown_work_order",
        "recorded",
    ]
    assert len(emulator.comments(work_order_id)) == before  # nothing said at MaintainX
    assert emulator.comments(foreign) == []
    assert next(w for w in emulator.work_orders if w["id"] == foreign)["status"] == "OPEN"
    await hub.refresh()
    kept = hub.store.kpis()
    assert any(r.site == "site-a" for r in kept)
    site.close()


async def test_a_held_reactivation_comments_once_with_its_own_words(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list[Any]
) -> None:
    """A rule whose own work order is in progress activates again: the agent names that
    work order twice (``related_work_order``, and ``work_order_id`` for the held comment).
    One comment, the held one; not the re-activation's too."""
    hub = await start_hub(hub_dict(mosquitto, emulator.url, tmp_path / "s"), tmp_path)
    running_hubs.append(hub)
    site = Site(mosquitto)
    site.subscribe("edge/v1/site-a/results")
    n = random.randrange(1 << 40)
    site.publish("edge/v1/site-a/alerts", make_alert("site-a", n, rule="held-rule"))
    await async_wait_until(lambda: len(site.results()) == 1, 20, "the work order")
    work_order_id = site.results()[0]["work_order_id"]
    again = make_alert(
        "site-a",
        n + 1,
        rule="held-rule",
        notify=False,
        held="maintenance",
        related_work_order=work_order_id,
        work_order_id=work_order_id,
        comment="held-rule went into alarm again while this work order is IN_PROGRESS",
    )
    site.publish("edge/v1/site-a/alerts", again)
    await async_wait_until(lambda: len(site.results()) == 2, 20, "the answer")
    assert site.results()[1]["action"] == "commented"
    texts = [c["content"] for c in emulator.comments(work_order_id)]
    assert len(texts) == 1 and texts[0].startswith("held-rule went into alarm again"), texts
    site.close()
