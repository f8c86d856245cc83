"""The store's contract on both backends, and hub files through ``edge-agent validate``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from edge_agent.hub.store import AlertRecord, HubLedger, HubStore
from edge_agent.hub.store_sqlite import SqliteHubStore
from tests.conftest import REPO_ROOT
from tests.hub.conftest import PG_DSN

T = TypeVar("T")


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


async def test_claims_ledger_parking_statuses_and_kpis(store: HubStore) -> None:
    alert = AlertRecord("site-a", "alert-1", "pump-1", "rule-1", 1)
    assert store.claim("alert-1", "hub-1", 60 * 10**9)
    assert not store.claim("alert-1", "hub-2", 60 * 10**9)  # held by another replica
    assert store.claim("alert-1", "hub-1", 60 * 10**9)  # its own holder may renew
    ledger = store.ledger(alert)
    assert await ledger.begin_create("alert-1") is False
    assert await ledger.begin_create("alert-1") is True  # an unconfirmed earlier attempt
    await ledger.record_created("alert-1", 42)
    await ledger.mark_done("alert-1:activated", "created")
    store.release("alert-1", "hub-1")
    assert store.claim("alert-1", "hub-2", 60 * 10**9)
    assert store.result_of("alert-1:activated").work_order_id == 42
    store.park("site-a", "e2", "alert-2", "{}", "credentials")
    store.park("site-a", "e2", "alert-2", "{}", "again")  # first park wins
    assert store.has_pending("alert-2") and store.pending_counts() == {"site-a": 1}
    assert [p.event_id for p in store.take_pending("site-a", "hub-1", 10**9, 10)] == ["e2"]
    assert store.take_pending("site-a", "hub-2", 10**9, 10) == []  # leased
    store.unpark("e2")
    assert store.pending_counts() == {}
    assert store.apply_status("d1", "site-a", 42, "DONE", 5 * 10**18).status == "DONE"
    assert store.apply_status("d1", "site-a", 42, "DONE", 5 * 10**18) is None  # replay
    assert store.apply_status("d2", "site-b", 42, "DONE", 5 * 10**18) is None  # not ours
    assert store.apply_status("d3", "site-a", 42, "OPEN", 4 * 10**18).status == "DONE"  # older
    (row,) = store.kpis()
    assert (row.site, row.asset, row.alerts_raised, row.work_orders_created) == (
        "site-a",
        "pump-1",
        1,
        1,
    )
    assert row.open_backlog == 0 and row.work_orders_done == 1 and row.mttr_s is not None


def test_validate_reports_hub_file_problems_with_lines(tmp_path: Path) -> None:
    hub_file = tmp_path / "hub.yaml"
    hub_file.write_text(
        "hub:\n  id: hub-1\nbroker:\n  host: 127.0.0.1\n  protocol: '3.1.1'\n"
        "sites:\n  site-a:\n    api_key: plain-text-key\n"
        "dedup:\n  backend: postgres\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent", "validate", str(hub_file)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert f"{hub_file}:5:" in out and "broker.protocol" in out
    assert f"{hub_file}:8:" in out and "sites.site-a.api_key" in out
    assert "dedup" in out and "dsn" in out
    good = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "validate",
            "--skip-host-checks",  # its certificate and key files are the gateway's
            str(REPO_ROOT / "configs/examples/hub.yaml"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0, good.stdout + good.stderr


def at_once(call: Coroutine[Any, Any, T]) -> T:
    """The value of a ledger call that finishes without waiting: answered from memory, on
    the event loop (each hand-off to a thread costs the hub measurable CPU)."""
    try:
        call.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    call.close()
    raise AssertionError("the call waited for the store")


async def test_an_unconfirmed_create_is_never_forgotten(store: HubStore) -> None:
    """begin_event may begin the create itself; a work order recorded but not yet committed
    with its event (the hub killed in between) is either known afterwards or the create is
    reported as possibly sent, so it is looked up instead of made twice."""
    alert = AlertRecord("site-a", "alert-9", "pump-1", "rule-1", 1)
    event = "alert-9:activated"

    def begin() -> HubLedger:
        start = store.begin_event(
            alert, event, "hub-1", 60 * 10**9, check_pending=True, begin_create=True
        )
        assert start.claimed and start.result is None
        return store.ledger(alert, start, "hub-1")

    ledger = begin()
    # What begin_event read is answered from memory, not through the store.
    assert at_once(ledger.is_done(event)) is False
    assert at_once(ledger.work_order_for("alert-9")) is None
    if isinstance(store, SqliteHubStore):  # its begin_event began the create too
        assert at_once(ledger.begin_create("alert-9")) is False  # the first attempt
    else:
        assert await ledger.begin_create("alert-9") is False  # the first attempt
    at_once(ledger.record_created("alert-9", 77))  # kept for mark_done's transaction
    assert at_once(ledger.work_order_for("alert-9")) == 77
    del ledger  # killed before mark_done
    store.release("alert-9", "hub-1")

    ledger = begin()
    assert await ledger.is_done(event) is False
    known = await ledger.work_order_for("alert-9")
    assert known == 77 or await ledger.begin_create("alert-9") is True
    await ledger.record_created("alert-9", 77)
    await ledger.mark_done(event, "found")
    result = store.result_of(event)
    assert result is not None and (result.action, result.work_order_id) == ("found", 77)


async def test_begin_event_checks_the_ids_site_first(store: HubStore) -> None:
    """Issue 16: the foreign-id check is begin_event's first step (one hand-off to the store
    per alert, not two). Another site's alert or event id is answered ``foreign`` with
    nothing read, claimed or written for it; the owning site's event goes on as before."""
    alert = AlertRecord("site-a", "alert-f", "pump-1", "rule-1", 1)
    event = "alert-f:activated"
    start = store.begin_event(alert, event, "hub-1", 60 * 10**9, check_pending=True, site="site-a")
    assert start.claimed and not start.foreign  # first use: site-a's from now on
    ledger = store.ledger(alert, start, "hub-1")
    await ledger.mark_done(event, "created")

    stolen = AlertRecord("site-b", "alert-f", "pump-9", "rule-9", 2)
    for event_id in ("alert-f:cleared", event):  # its alert id, then its event id
        start = await store.begin_event_async(
            stolen, event_id, "hub-2", 60 * 10**9, check_pending=True, site="site-b"
        )
        assert start.foreign and start.result is None and not start.claimed
    other = AlertRecord("site-b", "alert-g", "pump-9", "rule-9", 2)
    start = await store.begin_event_async(
        other, event, "hub-2", 60 * 10**9, check_pending=True, site="site-b"
    )
    assert start.foreign  # site-a's event id under a new alert id
    assert store.claim("alert-g", "hub-3", 60 * 10**9)  # no claim was taken for it
    assert store.sites_of("alert-g", "alert-g:activated") == set()  # nothing recorded

    # The owner's redelivery is answered from its record; without ``site``, no check.
    again = await store.begin_event_async(
        alert, event, "hub-1", 60 * 10**9, check_pending=True, site="site-a"
    )
    assert not again.foreign and again.result is not None
    unchecked = store.begin_event(stolen, event, "hub-2", 60 * 10**9, check_pending=False)
    assert not unchecked.foreign and unchecked.result is not None


async def test_two_postgres_replicas_see_each_others_ids_as_foreign(pg_schema: str) -> None:
    """Review of issue 16's foreign-id step on PostgreSQL with two replicas (two stores on
    one database): an alert id one replica has begun (claimed, not yet done), an event it
    parked and an event it finished are each another site's on the other replica; nothing
    is claimed there for them, and the owning replica goes on."""
    from edge_agent.hub.store_postgres import PostgresHubStore

    prefix = f"{pg_schema}.hub_"
    one = PostgresHubStore(PG_DSN, pool_size=2, table_prefix=prefix)
    two = PostgresHubStore(PG_DSN, pool_size=2, table_prefix=prefix)
    try:
        lease = 60 * 10**9
        begun = AlertRecord("site-a", "alert-p", "pump-1", "rule-1", 1)
        start = await one.begin_event_async(
            begun, "alert-p:activated", "hub-1", lease, check_pending=True, site="site-a"
        )
        assert start.claimed and not start.foreign  # in flight on replica one
        one.park("site-a", "alert-q:activated", "alert-q", "{}", "credentials")
        done = AlertRecord("site-a", "alert-r", "pump-1", "rule-1", 1)
        start = one.begin_event(done, "alert-r:activated", "hub-1", lease, check_pending=True)
        await one.ledger(done, start, "hub-1").mark_done("alert-r:activated", "created")

        for alert_id, event_id in (
            ("alert-p", "alert-p:cleared"),  # the begun alert's id
            ("alert-x", "alert-q:activated"),  # the parked event's id
            ("alert-q", "alert-q:cleared"),  # the parked event's alert id
            ("alert-y", "alert-r:activated"),  # the finished event's id
        ):
            stolen = AlertRecord("site-b", alert_id, "pump-9", "rule-9", 2)
            start = await two.begin_event_async(
                stolen, event_id, "hub-2", lease, check_pending=True, site="site-b"
            )
            assert start.foreign and not start.claimed and start.result is None, event_id
        assert two.claim("alert-x", "hub-3", lease)  # nothing was claimed for site-b
        assert two.sites_of("alert-x", "alert-x:activated") == set()
        again = await one.begin_event_async(
            begun, "alert-p:activated", "hub-1", lease, check_pending=True, site="site-a"
        )
        assert again.claimed and not again.foreign  # its owner renews its own claim
    finally:
        one.close()
        two.close()
