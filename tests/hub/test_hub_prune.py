"""The hub's event table is pruned by age on both backends; an alert keeps its work order,
so an activation resent after the retention still finds it (issue 17 §2). Found on main:
the event table grew by one row per event for ever."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge_agent.common.sqlite_wal import wal_bytes
from edge_agent.common.time_units import NS_PER_DAY
from edge_agent.hub.config import Dedup
from edge_agent.hub.prune import prune_once
from edge_agent.hub.store import AlertRecord, HubStore
from edge_agent.hub.store_sqlite import SqliteHubStore
from tests.hub.test_hub_store_config import store

__all__ = ["store"]


async def test_events_older_than_the_retention_are_forgotten(store: HubStore) -> None:
    alert = AlertRecord("site-a", "alert-1", "pump-1", "rule-1", 1)
    ledger = store.ledger(alert)
    await ledger.begin_create("alert-1")
    await ledger.record_created("alert-1", 42)
    await ledger.mark_done("alert-1:activated", "created")
    cutoff = time.time_ns()
    await store.ledger(alert).mark_done("alert-1:cleared", "commented")

    assert store.prune_events(cutoff) == 1
    assert store.result_of("alert-1:activated") is None
    assert store.result_of("alert-1:cleared") is not None
    # The alert's work order stays: a resent activation finds it, never a second one.
    assert await store.ledger(alert).work_order_for("alert-1") == 42
    # The hub's round: nothing is old enough now.
    assert await prune_once(store, 7 * NS_PER_DAY) == 0


async def test_the_sqlite_wal_is_truncated_after_a_prune(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    store = SqliteHubStore(path)
    try:
        alert = AlertRecord("site-a", "alert-1", "pump-1", "rule-1", 1)
        for n in range(50):
            await store.ledger(alert).mark_done(f"alert-1:event-{n}", "commented")
        assert wal_bytes(path) > 0
        store.prune_events(time.time_ns() + 1)
        assert wal_bytes(path) == 0
    finally:
        store.close()


def test_the_retention_must_outlast_every_resend_window() -> None:
    assert Dedup().retention == 90 * NS_PER_DAY
    with pytest.raises(ValidationError, match="longer than any window"):
        Dedup.model_validate({"retention": "24h"})


async def test_a_failing_prune_is_logged_and_never_ends_the_hub(tmp_path: Path) -> None:
    store = SqliteHubStore(tmp_path / "hub.sqlite3")
    store.close()  # every operation now fails, as with a store that is down
    assert await prune_once(store, 7 * NS_PER_DAY) == 0


async def test_a_wall_clock_set_years_ahead_forgets_no_recent_event(store: HubStore) -> None:
    """The age is also counted from the newest event: a gateway clock set to 2036 at boot
    must not make every applied event look ten years old (a resent one applied twice)."""
    alert = AlertRecord("site-a", "alert-9", "pump-1", "rule-1", 1)
    await store.ledger(alert).mark_done("alert-9:activated", "created")
    ten_years_ahead = time.time_ns() + 10 * 365 * NS_PER_DAY
    assert store.prune_events(ten_years_ahead - 7 * NS_PER_DAY, keep_newest_ns=7 * NS_PER_DAY) == 0
    assert store.result_of("alert-9:activated") is not None


def test_a_parked_event_is_handed_out_only_after_the_earlier_ones_of_its_alert(
    store: HubStore,
) -> None:
    """Two replicas drain one site: the one holding an alert's parked activation must not
    see another apply its cleared first (it found no work order and the clear was lost;
    found by the fault campaign)."""
    store.park("site-a", "a:activated", "a", '{"n": 1}', "unavailable")
    store.park("site-a", "a:cleared", "a", '{"n": 2}', "earlier events of this alert are parked")
    store.park("site-a", "b:activated", "b", '{"n": 3}', "unavailable")
    first = store.take_pending("site-a", "hub1", 60 * 1_000_000_000, 10)
    assert [e.event_id for e in first] == ["a:activated", "b:activated"]
    # The other replica: a's activation is leased to hub1, still parked: nothing of a.
    assert store.take_pending("site-a", "hub2", 60 * 1_000_000_000, 10) == []
    store.unpark("a:activated")
    assert [e.event_id for e in store.take_pending("site-a", "hub2", 1, 10)] == ["a:cleared"]


def test_a_held_parked_event_is_handed_out_only_after_its_hold(store: HubStore) -> None:
    """A create whose outcome is unknown parks its event with a hold: no replica takes it
    (and looks the work order up) before a slow create could have landed. A second park of
    the same event lengthens the hold, never shortens it."""
    second = 1_000_000_000
    store.park("site-a", "a:activated", "a", '{"n": 1}', "unavailable", 60 * second)
    store.park("site-a", "b:activated", "b", '{"n": 2}', "unavailable")
    assert [e.event_id for e in store.take_pending("site-a", "hub2", second, 10)] == ["b:activated"]
    store.park("site-a", "a:activated", "a", '{"n": 1}', "unavailable", 1)  # shorter: kept
    assert store.take_pending("site-a", "hub2", second, 10) == []
    store.park("site-a", "c:activated", "c", '{"n": 3}', "unavailable", 1)
    time.sleep(0.01)
    assert [e.event_id for e in store.take_pending("site-a", "hub2", second, 10)] == ["c:activated"]
