"""``edge-agent hub HUB.yaml migrate-store --from OLD.sqlite3``: a single hub's SQLite store
moved into the configured PostgreSQL store, when the hub grows to several replicas.

What moves: alerts (alert id → work order id: the dedup that keeps one work order per alert),
the events already answered, the work orders and their statuses (the KPIs are computed from
alerts and work orders, so they move with them), parked events, the webhook deliveries
already applied, and the plant data tables (answered readings and statuses, the meter and
trigger ids created per site, the asset status changes; absent from older stores). Each row
is inserted with ``ON CONFLICT DO NOTHING`` (an alert's work order id is filled in where
PostgreSQL has none): running it twice changes nothing, and a run that
was interrupted is completed by running it again. Rows already in PostgreSQL win: a hub that
ran on it meanwhile is not overwritten. The SQLite file is opened read-only.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from edge_agent.config.secrets import SecretError, resolve
from edge_agent.errors import EdgeAgentError
from edge_agent.hub.config import HubConfig
from edge_agent.hub.drivers import MISSING_POSTGRES
from edge_agent.hub.store import StoreError
from edge_agent.redaction import register_secret

BATCH: Final = 1000
"""Rows per transaction: an interrupted run loses at most one batch of work, never data."""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    conflict: str
    """What a row already in PostgreSQL gets: the ON CONFLICT clause."""
    since: str | None = None
    """The release that added the table (an older store lacks it: nothing to copy)."""


TABLES: Final = (
    Table(
        "alerts",
        ("alert_id", "site", "asset", "rule", "raised_ns", "work_order_id", "create_attempts"),
        "(alert_id) DO UPDATE SET work_order_id = COALESCE(t.work_order_id, "
        "excluded.work_order_id) WHERE t.work_order_id IS NULL",
    ),
    Table("events", ("event_id", "alert_id", "action", "done_ns"), "DO NOTHING"),
    Table(
        "work_orders",
        (
            "site",
            "work_order_id",
            "alert_id",
            "asset",
            "rule",
            "status",
            "created_ns",
            "status_ns",
            "done_ns",
        ),
        "DO NOTHING",
    ),
    Table(
        "pending",
        ("event_id", "site", "alert_id", "payload", "reason", "received_ns", "attempts"),
        "DO NOTHING",
    ),
    Table("webhook_deliveries", ("delivery_key", "received_ns"), "DO NOTHING"),
    Table(
        "alarm_events",
        (
            "event_id",
            "site",
            "alert_id",
            "asset",
            "rule",
            "event",
            "work_order_id",
            "by_whom",
            "reason",
            "time_ns",
            "recorded_ns",
        ),
        "DO NOTHING",
        since="the alarm lifecycle (issue 13)",
    ),
    # Plant data (issue 14): answered readings and statuses, created meter and trigger ids,
    # the status changes the availability KPIs are computed from.
    Table(
        "plant_events",
        ("site", "message_id", "kind", "action", "done_ns"),
        "DO NOTHING",
        since="plant data (issue 14)",
    ),
    Table(
        "plant_ids",
        ("site", "kind", "key", "maintainx_id", "recorded_ns"),
        "DO NOTHING",
        since="plant data (issue 14)",
    ),
    Table(
        "asset_statuses",
        ("site", "asset", "message_id", "status", "downtime_type", "started_ns"),
        "DO NOTHING",
        since="plant data (issue 14)",
    ),
)


class MigrationError(EdgeAgentError):
    """The migration cannot run (wrong backend, unreadable source, PostgreSQL refused)."""


@dataclass
class TableResult:
    name: str
    read: int = 0
    added: int = 0


def open_source(path: Path) -> sqlite3.Connection:
    """The old store, read-only; refused unless it is a hub store."""
    if not path.is_file():
        raise MigrationError(f"{path}: no such file")
    try:
        db = sqlite3.connect(f"file:{path.absolute()}?mode=ro", uri=True)
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.Error as exc:
        raise MigrationError(f"{path}: not a readable SQLite file ({exc})") from exc
    missing = [t.name for t in TABLES if t.name not in names and t.since is None]
    if missing:
        db.close()
        raise MigrationError(f"{path}: not a hub store (no table {', '.join(missing)})")
    return db


def migrate_store(config: HubConfig, base_dir: Path, source: Path) -> list[TableResult]:
    """Copy every table of ``source`` into the configured PostgreSQL store (blocking)."""
    if config.dedup.backend != "postgres" or config.dedup.dsn is None:
        raise MigrationError(
            "migrate-store moves a SQLite store into PostgreSQL: set dedup.backend: postgres "
            "(and dedup.dsn) in the hub file first"
        )
    try:
        import psycopg
    except ImportError as exc:
        raise MigrationError(MISSING_POSTGRES) from exc
    from edge_agent.hub.app import open_store
    from edge_agent.hub.plant_store import open_plant_store

    db = open_source(source)
    try:
        # Opening the store once creates its tables, exactly as the hub would.
        store = open_store(config, base_dir)
        try:
            open_plant_store(store)
        finally:
            store.close()
        try:
            dsn = resolve(config.dedup.dsn, base_dir).reveal()
        except SecretError as exc:
            raise MigrationError(f"dedup.dsn: {exc}") from exc
        register_secret(dsn)
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as target:
                return [
                    _copy(db, target, config.dedup.table_prefix, t)
                    for t in TABLES
                    if t.since is None or _has_table(db, t.name)
                ]
        except psycopg.Error as exc:
            # The DSN may hold a password: name the failure, never the DSN.
            raise MigrationError(
                f"PostgreSQL: {type(exc).__name__}: {getattr(exc, 'sqlstate', None)}"
            ) from exc
    except StoreError as exc:
        raise MigrationError(str(exc)) from exc
    finally:
        db.close()


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return db.execute(query, (name,)).fetchone() is not None


def _copy(db: sqlite3.Connection, target: Any, prefix: str, table: Table) -> TableResult:
    result = TableResult(table.name)
    columns = ", ".join(table.columns)
    marks = ", ".join(["%s"] * len(table.columns))
    # The prefix matched dedup.table_prefix's pattern (lower-case identifiers) on load.
    insert = (
        f"INSERT INTO {prefix}{table.name} AS t ({columns}) VALUES ({marks}) "  # noqa: S608
        f"ON CONFLICT {table.conflict}"
    )
    count = f"SELECT count(*) FROM {prefix}{table.name}"  # noqa: S608
    before = target.execute(count).fetchone()[0]
    rows = db.execute(f"SELECT {columns} FROM {table.name} ORDER BY rowid")  # noqa: S608
    while True:
        batch = rows.fetchmany(BATCH)
        if not batch:
            break
        with target.transaction(), target.cursor() as cursor:
            cursor.executemany(insert, batch)
        result.read += len(batch)
    result.added = int(target.execute(count).fetchone()[0]) - int(before)
    return result
