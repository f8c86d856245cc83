"""``hub HUB.yaml migrate-store --from OLD.sqlite3``: a SQLite store moved into PostgreSQL,
idempotently (twice changes nothing; an interrupted run is completed by the next)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from edge_agent.cli import main
from edge_agent.hub.store import AlertRecord
from edge_agent.hub.store_sqlite import SqliteHubStore
from tests.hub.conftest import PG_DSN

N = 30


def _old_store(path: Path) -> None:
    """A single hub's store after some work: alerts with work orders, some done, one parked."""
    store = SqliteHubStore(path)
    try:
        for n in range(N):
            site = "site-a" if n % 2 else "site-b"
            alert_id = f"alert-{n}"
            ledger = store.ledger(AlertRecord(site, alert_id, f"pump-{n % 3}", "rule-1", n))
            assert asyncio.run(ledger.begin_create(alert_id)) is False
            asyncio.run(ledger.record_created(alert_id, 1000 + n))
            asyncio.run(ledger.mark_done(f"{alert_id}:activated", "created"))
            if n % 3 == 0:
                done_ns = time.time_ns() + (n + 1) * 60 * 10**9
                store.apply_status(f"d{n}", site, 1000 + n, "DONE", done_ns)
        store.park("site-a", "e-parked", "alert-parked", "{}", "credentials")
    finally:
        store.close()


def _kpis(store: Any) -> list[tuple[Any, ...]]:
    """The KPI rows, the mean time to repair to the millisecond (the two databases' float
    sums may differ in the last bit)."""
    return [
        (*dataclasses.astuple(row)[:-1], None if row.mttr_s is None else round(row.mttr_s, 3))
        for row in store.kpis()
    ]


@dataclasses.dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def _migrate(hub_file: Path, source: Path) -> Done:
    """``edge-agent hub HUB.yaml migrate-store --from SOURCE``, in this process."""
    capture = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(capture[0]), contextlib.redirect_stderr(capture[1]):
        code = main(["hub", str(hub_file), "migrate-store", "--from", str(source)])
    return Done(code, capture[0].getvalue(), capture[1].getvalue())


def test_migrate_store_is_complete_and_idempotent(tmp_path: Path, pg_schema: str) -> None:
    import psycopg

    from edge_agent.hub.store_postgres import PostgresHubStore

    source = tmp_path / "hub.sqlite3"
    _old_store(source)
    prefix = f"{pg_schema}.hub_"
    hub_file = tmp_path / "hub.yaml"
    data = {
        "hub": {"id": "hub-1"},
        "broker": {"host": "127.0.0.1"},
        "sites": {"site-a": {"api_key": "${A}"}, "site-b": {"api_key": "${B}"}},
        "dedup": {"backend": "postgres", "dsn": "${HUB_MIGRATE_PG_DSN}", "table_prefix": prefix},
        "state_dir": str(tmp_path / "state"),
    }
    with hub_file.open("w") as handle:
        YAML().dump(data, handle)

    first = _migrate(hub_file, source)
    assert first.returncode == 0, first.stderr
    assert f"alerts: {N} rows read, {N} new" in first.stdout
    assert f"work_orders: {N} rows read, {N} new" in first.stdout
    assert "pending: 1 rows read, 1 new" in first.stdout
    old = SqliteHubStore(source)
    new = PostgresHubStore(PG_DSN, pool_size=1, table_prefix=prefix)
    try:
        assert _kpis(new) == _kpis(old)
        assert new.result_of("alert-7:activated").work_order_id == 1007
        assert new.pending_counts() == {"site-a": 1}

        second = _migrate(hub_file, source)
        assert second.returncode == 0, second.stderr
        assert f"alerts: {N} rows read, 0 new" in second.stdout
        assert " new" in second.stdout and ", 1 new" not in second.stdout
        assert _kpis(new) == _kpis(old)

        # Interrupted: PostgreSQL holds part of it (a hub ran on it meanwhile, too).
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DELETE FROM {prefix}work_orders WHERE work_order_id >= 1015")
            conn.execute(
                f"UPDATE {prefix}alerts SET work_order_id = NULL WHERE alert_id = 'alert-3'"
            )
            conn.execute(f"DELETE FROM {prefix}events WHERE alert_id >= 'alert-2'")
        third = _migrate(hub_file, source)
        assert third.returncode == 0, third.stderr
        assert _kpis(new) == _kpis(old)
        assert new.result_of("alert-3:activated").work_order_id == 1003
    finally:
        old.close()
        new.close()


def test_migrate_store_refuses_what_it_cannot_move(tmp_path: Path) -> None:
    hub_file = tmp_path / "hub.yaml"
    hub_file.write_text(
        "hub: {id: hub-1}\nbroker: {host: 127.0.0.1}\nsites: {site-a: {api_key: '${A}'}}\n"
        f"state_dir: {tmp_path / 'state'}\n"
    )
    not_pg = _migrate(hub_file, tmp_path / "x.sqlite3")
    assert not_pg.returncode == 1 and "dedup.backend: postgres" in not_pg.stderr
    hub_file.write_text(
        hub_file.read_text() + "dedup: {backend: postgres, dsn: '${HUB_MIGRATE_PG_DSN}'}\n"
    )
    missing = _migrate(hub_file, tmp_path / "x.sqlite3")
    assert missing.returncode == 1 and "no such file" in missing.stderr
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    wrong = _migrate(hub_file, other)
    assert wrong.returncode == 1 and "not a hub store" in wrong.stderr
    assert "Traceback" not in wrong.stderr


@pytest.fixture(autouse=True)
def _sites_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A", "key-a")
    monkeypatch.setenv("HUB_MIGRATE_PG_DSN", PG_DSN)
    monkeypatch.setenv("B", "key-b")


def test_migrate_store_moves_the_plant_data(tmp_path: Path, pg_schema: str) -> None:
    """Issue 14: the meters created per site, the readings answered and the asset status
    changes move too; a store from before them (no plant tables) still migrates."""
    from edge_agent.hub.asset_kpis import asset_kpis
    from edge_agent.hub.plant_store import StatusRow, open_plant_store
    from edge_agent.hub.store_postgres import PostgresHubStore

    source = tmp_path / "hub.sqlite3"
    _old_store(source)
    old = SqliteHubStore(source)
    try:
        plant = open_plant_store(old)
        plant.record_id("site-a", "meter", "p101-run-hours", 53)
        plant.record_id("site-b", "meter", "p101-run-hours", 54)
        plant.record("site-a", ["r1", "r2"], "reading", "posted", None)
        for n, state in enumerate(["OFFLINE", "ONLINE"]):
            kind = "UNPLANNED" if state == "OFFLINE" else None
            row = StatusRow("site-a", "P-101", f"s{n}", state, kind, (n + 1) * 10**12)
            plant.record("site-a", [f"s{n}"], "status", "posted", row)
        expected = asset_kpis(plant.asset_statuses(), now_ns=10**13)
    finally:
        old.close()
    prefix = f"{pg_schema}.hub_"
    hub_file = tmp_path / "hub.yaml"
    data = {
        "hub": {"id": "hub-1"},
        "broker": {"host": "127.0.0.1"},
        "sites": {"site-a": {"api_key": "${A}"}, "site-b": {"api_key": "${B}"}},
        "dedup": {"backend": "postgres", "dsn": "${HUB_MIGRATE_PG_DSN}", "table_prefix": prefix},
        "state_dir": str(tmp_path / "state"),
    }
    with hub_file.open("w") as handle:
        YAML().dump(data, handle)
    done = _migrate(hub_file, source)
    assert done.returncode == 0, done.stderr
    assert "plant_ids: 2 rows read, 2 new" in done.stdout
    assert "asset_statuses: 2 rows read, 2 new" in done.stdout
    new = PostgresHubStore(PG_DSN, pool_size=1, table_prefix=prefix)
    try:
        moved = open_plant_store(new)
        assert moved.maintainx_id("site-a", "meter", "p101-run-hours") == 53
        assert moved.maintainx_id("site-b", "meter", "p101-run-hours") == 54
        assert moved.action_of("site-a", "r2") == "posted"
        assert moved.action_of("site-b", "r2") is None  # a site's ids are its own
        assert asset_kpis(moved.asset_statuses(), now_ns=10**13) == expected
    finally:
        new.close()
    # A store from before issue 14 has no plant tables: the rest still moves.
    older = tmp_path / "older.sqlite3"
    _old_store(older)
    with sqlite3.connect(older) as db:
        for table in ("plant_events", "plant_ids", "asset_statuses"):
            db.execute(f"DROP TABLE IF EXISTS {table}")
    again = _migrate(hub_file, older)
    assert again.returncode == 0, again.stderr
    assert "plant_ids" not in again.stdout
