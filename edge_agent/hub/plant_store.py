"""What the hub keeps durably of plant data (meter readings, asset status changes), beside
the alert store and in the same database: SQLite or PostgreSQL, whichever the hub uses.

- ``plant_events``: every reading or status change the hub answered, by (site, id), with
  what it did (``posted``, ``rejected:<reason>``): a resent message is answered from here
  and never posted twice.
- ``plant_ids``: per site, the MaintainX meter created (or found) for a meter name, and the
  triggers created on it (:class:`HubMeterLedger`, the hub's
  :class:`~edge_agent.maintainx.meters.MeterIdLedger`): created once per (site, meter).
- ``asset_statuses``: every status change posted, for availability and MTBF
  (:mod:`edge_agent.hub.asset_kpis`).

Every key starts with the site: one site's ids never answer another's, and one site's meters
are never another's. Methods block (disk or network): the hub calls them in a thread.
"""

# Table names come from the store's own validated prefix; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from edge_agent.hub.store import HubStore, StoreError

PLANT_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS {p}plant_events (
    site TEXT NOT NULL, message_id TEXT NOT NULL, kind TEXT NOT NULL, action TEXT NOT NULL,
    done_ns BIGINT NOT NULL, PRIMARY KEY (site, message_id)
);
CREATE INDEX IF NOT EXISTS {n}plant_events_done ON {p}plant_events (done_ns);
CREATE TABLE IF NOT EXISTS {p}plant_ids (
    site TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, maintainx_id BIGINT NOT NULL,
    recorded_ns BIGINT NOT NULL, PRIMARY KEY (site, kind, key)
);
CREATE TABLE IF NOT EXISTS {p}asset_statuses (
    site TEXT NOT NULL, asset TEXT NOT NULL, message_id TEXT NOT NULL, status TEXT NOT NULL,
    downtime_type TEXT, started_ns BIGINT NOT NULL, PRIMARY KEY (site, message_id)
);
CREATE INDEX IF NOT EXISTS {n}asset_statuses_asset ON {p}asset_statuses (site, asset, started_ns);
"""
PLANT_TABLES: Final = ("plant_events", "plant_ids", "asset_statuses")
REJECTED: Final = "rejected"
"""An action ``rejected:<reason>``: answered rejected again when the message comes again."""


@dataclass(frozen=True)
class StatusRow:
    """One asset status change as posted."""

    site: str
    asset: str
    message_id: str
    status: str
    downtime_type: str | None
    started_ns: int


class PlantStore(Protocol):
    """The plant data tables of one hub store (see the module doc)."""

    def action_of(self, site: str, message_id: str) -> str | None:
        """What the hub did with this message, if it answered it before."""
        ...

    def record(
        self,
        site: str,
        message_ids: Sequence[str],
        kind: str,
        action: str,
        status: StatusRow | None,
    ) -> None:
        """Remember that these messages were answered with ``action`` (the first record
        wins), and the status change posted, if any, in one transaction."""
        ...

    def maintainx_id(self, site: str, kind: str, key: str) -> int | None: ...

    def record_id(self, site: str, kind: str, key: str, maintainx_id: int) -> None:
        """Record a meter (``kind`` meter) or trigger id; the first record wins."""
        ...

    def asset_statuses(self, since_ns: int = 0) -> list[StatusRow]:
        """Every status change started since ``since_ns``, by site, asset and time."""
        ...

    def prune(self, older_than_ns: int) -> int:
        """Forget answered messages older than this (the status changes stay: KPIs)."""
        ...


class _Sql:
    """The statements both backends run, with their placeholder."""

    def __init__(self, prefix: str, mark: str) -> None:
        p = prefix
        self.action_of = (
            f"SELECT action FROM {p}plant_events WHERE site = {mark} AND message_id = {mark}"
        )
        self.record = (
            f"INSERT INTO {p}plant_events (site, message_id, kind, action, done_ns) "
            f"VALUES ({mark}, {mark}, {mark}, {mark}, {mark}) "
            "ON CONFLICT (site, message_id) DO NOTHING"
        )
        self.status = (
            f"INSERT INTO {p}asset_statuses (site, asset, message_id, status, downtime_type, "
            f"started_ns) VALUES ({mark}, {mark}, {mark}, {mark}, {mark}, {mark}) "
            "ON CONFLICT (site, message_id) DO NOTHING"
        )
        self.id_of = (
            f"SELECT maintainx_id FROM {p}plant_ids WHERE site = {mark} AND kind = {mark} "
            f"AND key = {mark}"
        )
        self.record_id = (
            f"INSERT INTO {p}plant_ids (site, kind, key, maintainx_id, recorded_ns) "
            f"VALUES ({mark}, {mark}, {mark}, {mark}, {mark}) "
            "ON CONFLICT (site, kind, key) DO NOTHING"
        )
        self.statuses = (
            "SELECT site, asset, message_id, status, downtime_type, started_ns "
            f"FROM {p}asset_statuses WHERE started_ns >= {mark} "
            "ORDER BY site, asset, started_ns, message_id"
        )
        self.prune = f"DELETE FROM {p}plant_events WHERE done_ns < {mark}"


def _status_rows(rows: list[Any]) -> list[StatusRow]:
    return [StatusRow(str(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4], int(r[5])) for r in rows]


class SqlitePlantStore:
    """:class:`PlantStore` on the SQLite store's writer (its connection, its group commit)."""

    def __init__(self, run: Callable[[Callable[[sqlite3.Connection], Any]], Any]) -> None:
        self._run = run
        self._sql = _Sql("", "?")
        statements = [x for x in PLANT_SCHEMA.format(p="", n="").split(";") if x.strip()]

        def create(db: sqlite3.Connection) -> None:
            for statement in statements:  # one by one: executescript would end the batch
                db.execute(statement)

        self._run(create)

    def action_of(self, site: str, message_id: str) -> str | None:
        row = self._run(lambda db: db.execute(self._sql.action_of, (site, message_id)).fetchone())
        return None if row is None else str(row[0])

    def record(
        self,
        site: str,
        message_ids: Sequence[str],
        kind: str,
        action: str,
        status: StatusRow | None,
    ) -> None:
        now = time.time_ns()
        rows = [(site, m, kind, action, now) for m in message_ids]

        def op(db: sqlite3.Connection) -> None:
            db.executemany(self._sql.record, rows)
            if status is not None:
                db.execute(self._sql.status, _status_values(status))

        self._run(op)

    def maintainx_id(self, site: str, kind: str, key: str) -> int | None:
        row = self._run(lambda db: db.execute(self._sql.id_of, (site, kind, key)).fetchone())
        return None if row is None else int(row[0])

    def record_id(self, site: str, kind: str, key: str, maintainx_id: int) -> None:
        values = (site, kind, key, maintainx_id, time.time_ns())
        self._run(lambda db: db.execute(self._sql.record_id, values))

    def asset_statuses(self, since_ns: int = 0) -> list[StatusRow]:
        rows = self._run(lambda db: db.execute(self._sql.statuses, (since_ns,)).fetchall())
        return _status_rows(list(rows))

    def prune(self, older_than_ns: int) -> int:
        return int(self._run(lambda db: db.execute(self._sql.prune, (older_than_ns,)).rowcount))


def _status_values(status: StatusRow) -> tuple[Any, ...]:
    return (
        status.site,
        status.asset,
        status.message_id,
        status.status,
        status.downtime_type,
        status.started_ns,
    )


class PostgresPlantStore:
    """:class:`PlantStore` on the PostgreSQL store's pool and table prefix."""

    def __init__(self, pool: Any, prefix: str) -> None:
        self._pool = pool
        self._sql = _Sql(prefix, "%s")
        index_prefix = prefix.split(".")[-1]
        with pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(7242014)")  # replicas starting together
            conn.execute(PLANT_SCHEMA.format(p=prefix, n=index_prefix))

    def action_of(self, site: str, message_id: str) -> str | None:
        with self._pool.connection() as conn:
            row = conn.execute(self._sql.action_of, (site, message_id)).fetchone()
        return None if row is None else str(row[0])

    def record(
        self,
        site: str,
        message_ids: Sequence[str],
        kind: str,
        action: str,
        status: StatusRow | None,
    ) -> None:
        now = time.time_ns()
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(
                self._sql.record, [(site, m, kind, action, now) for m in message_ids]
            )
            if status is not None:
                cursor.execute(self._sql.status, _status_values(status))

    def maintainx_id(self, site: str, kind: str, key: str) -> int | None:
        with self._pool.connection() as conn:
            row = conn.execute(self._sql.id_of, (site, kind, key)).fetchone()
        return None if row is None else int(row[0])

    def record_id(self, site: str, kind: str, key: str, maintainx_id: int) -> None:
        with self._pool.connection() as conn:
            conn.execute(self._sql.record_id, (site, kind, key, maintainx_id, time.time_ns()))

    def asset_statuses(self, since_ns: int = 0) -> list[StatusRow]:
        with self._pool.connection() as conn:
            rows = conn.execute(self._sql.statuses, (since_ns,)).fetchall()
        return _status_rows(list(rows))

    def prune(self, older_than_ns: int) -> int:
        with self._pool.connection() as conn:
            return int(conn.execute(self._sql.prune, (older_than_ns,)).rowcount)


def open_plant_store(store: HubStore) -> PlantStore:
    """The plant tables beside ``store``'s own (created if missing). Raises
    :class:`StoreError`."""
    from edge_agent.hub.store_sqlite import SqliteHubStore

    try:
        if isinstance(store, SqliteHubStore):
            return SqlitePlantStore(store.writer.run)
        from edge_agent.hub.store_postgres import PostgresHubStore

        if isinstance(store, PostgresHubStore):
            return PostgresPlantStore(store.pool, store.p)
    except StoreError:
        raise
    except Exception as exc:  # a driver's error while creating the tables
        raise StoreError(f"plant data tables: {type(exc).__name__}: {exc}") from exc
    raise StoreError(f"no plant data tables for a {type(store).__name__}")


class HubMeterLedger:
    """:class:`~edge_agent.maintainx.meters.MeterIdLedger` of one site, in the hub store."""

    def __init__(self, plant: PlantStore, site: str) -> None:
        self._plant = plant
        self._site = site

    async def meter_id(self, key: str) -> int | None:
        return await asyncio.to_thread(self._plant.maintainx_id, self._site, "meter", key)

    async def record_meter(self, key: str, meter_id: int) -> None:
        await asyncio.to_thread(self._plant.record_id, self._site, "meter", key, meter_id)

    async def trigger_id(self, key: str) -> int | None:
        return await asyncio.to_thread(self._plant.maintainx_id, self._site, "trigger", key)

    async def record_trigger(self, key: str, trigger_id: int) -> None:
        await asyncio.to_thread(self._plant.record_id, self._site, "trigger", key, trigger_id)
