"""The hub's store in PostgreSQL (psycopg 3): for several replicas sharing the load.

Every statement that decides something is one atomic statement on a unique key: the alert id
is the primary key of ``alerts`` (one work order per alert, however many replicas race), a
claim is taken with ``INSERT ... ON CONFLICT ... WHERE the lease expired``, parked events are
leased with ``FOR UPDATE SKIP LOCKED``. Connections are autocommit, from a small pool.
"""

# Table names are built from `table_prefix`, which must match _PREFIX_RE (lower-case
# identifiers only) before any SQL is built; every value travels as a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import psycopg

from edge_agent.common.schema_version import check
from edge_agent.hub.pg_pool import PgPool
from edge_agent.hub.store import (
    FOREIGN_START,
    KPI_ALERTS_SQL,
    KPI_ORDERS_SQL,
    PARKED_COLUMNS,
    REJECTED_ACTION,
    SCHEMA_VERSION,
    TAKE_PENDING_SQL,
    AlertRecord,
    EventStart,
    HubLedger,
    KpiRow,
    ParkedEvent,
    PendingEvent,
    StoredResult,
    StoreError,
    WorkOrderRef,
    earlier_create_unconfirmed,
    foreign_sites,
    merge_kpis,
    opt_int,
    parked_events,
    pending_events,
    stored_result,
    work_order_ref,
)
from edge_agent.hub.store_lifecycle import (
    ALARM_EVENTS_TABLE,
    INSERT_ALARM_EVENT_SQL,
    KPI_FIRST_TIME_FIX_SQL,
    KPI_TIME_TO_NORMAL_SQL,
    AlarmEventRecord,
    lifecycle_kpis,
)

_PREFIX_RE = re.compile(r"^([a-z_][a-z0-9_]{0,30}\.)?[a-z_][a-z0-9_]{0,30}$")

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS {p}schema_version (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row), version INTEGER NOT NULL
)
"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS {p}alerts (
    alert_id TEXT PRIMARY KEY, site TEXT NOT NULL, asset TEXT NOT NULL, rule TEXT NOT NULL,
    raised_ns BIGINT NOT NULL, work_order_id BIGINT, create_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS {p}events (
    event_id TEXT PRIMARY KEY, alert_id TEXT NOT NULL, action TEXT NOT NULL,
    done_ns BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS {p}work_orders (
    site TEXT NOT NULL, work_order_id BIGINT NOT NULL, alert_id TEXT NOT NULL,
    asset TEXT NOT NULL, rule TEXT NOT NULL, status TEXT NOT NULL, created_ns BIGINT NOT NULL,
    status_ns BIGINT NOT NULL, done_ns BIGINT, PRIMARY KEY (site, work_order_id)
);
CREATE TABLE IF NOT EXISTS {p}claims (
    alert_id TEXT PRIMARY KEY, owner TEXT NOT NULL, until_ns BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS {p}pending (
    event_id TEXT PRIMARY KEY, site TEXT NOT NULL, alert_id TEXT NOT NULL,
    payload TEXT NOT NULL, reason TEXT NOT NULL, received_ns BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, owner TEXT, until_ns BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS {n}pending_alert ON {p}pending (alert_id);
CREATE INDEX IF NOT EXISTS {n}pending_site ON {p}pending (site, received_ns);
CREATE TABLE IF NOT EXISTS {p}webhook_deliveries (
    delivery_key TEXT PRIMARY KEY, received_ns BIGINT NOT NULL
);
"""


class _Ledger(HubLedger):
    """The :class:`WorkOrderLedger` of one alert on PostgreSQL."""

    def __init__(
        self,
        store: PostgresHubStore,
        alert: AlertRecord,
        start: EventStart | None,
        owner: str | None,
    ) -> None:
        super().__init__(alert, start, owner)
        self._s = store

    # Each call holds a pooled connection for a blocking round trip: a worker thread's job.

    async def begin_create(self, alert_id: str) -> bool:
        return await asyncio.to_thread(self._begin_create, alert_id)

    def _begin_create(self, alert_id: str) -> bool:
        a = self._alert
        row = self._s._one(
            f"INSERT INTO {self._s.p}alerts AS t (alert_id, site, asset, rule, raised_ns, "
            "create_attempts) VALUES (%s, %s, %s, %s, %s, 1) ON CONFLICT (alert_id) DO UPDATE "
            "SET create_attempts = t.create_attempts + 1 RETURNING work_order_id, create_attempts",
            (alert_id, a.site, a.asset, a.rule, a.raised_ns),
        )
        return earlier_create_unconfirmed(row)

    async def _stored_work_order(self, alert_id: str) -> int | None:
        row = await asyncio.to_thread(
            self._s._one,
            f"SELECT work_order_id FROM {self._s.p}alerts WHERE alert_id = %s",
            (alert_id,),
        )
        return None if row is None else opt_int(row[0])

    async def _stored_event(self, event_id: str) -> bool:
        row = await asyncio.to_thread(
            self._s._one, f"SELECT 1 FROM {self._s.p}events WHERE event_id = %s", (event_id,)
        )
        return row is not None

    async def _commit_created(self, created: tuple[str, int, int]) -> None:
        await asyncio.to_thread(self._commit_created_now, created)

    def _commit_created_now(self, created: tuple[str, int, int]) -> None:
        with self._s._pool.connection() as conn, conn.transaction():
            self._write_created(conn, created)

    def _write_created(self, conn: psycopg.Connection[Any], created: tuple[str, int, int]) -> None:
        """The work order's id on its alert, and its row for the statuses (caller's
        transaction)."""
        a = self._alert
        p = self._s.p
        alert_id, work_order_id, now = created
        conn.execute(
            f"INSERT INTO {p}alerts (alert_id, site, asset, rule, raised_ns, work_order_id) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (alert_id) DO UPDATE SET "
            "work_order_id = excluded.work_order_id",
            (alert_id, a.site, a.asset, a.rule, a.raised_ns, work_order_id),
        )
        conn.execute(
            f"INSERT INTO {p}work_orders (site, work_order_id, alert_id, asset, rule, status, "
            "created_ns, status_ns) VALUES (%s, %s, %s, %s, %s, 'OPEN', %s, 0) "
            "ON CONFLICT (site, work_order_id) DO NOTHING",
            (a.site, work_order_id, alert_id, a.asset, a.rule, now),
        )

    async def mark_done(self, event_id: str, result: str) -> None:
        await asyncio.to_thread(self._mark_done, event_id, result)

    def _mark_done(self, event_id: str, result: str) -> None:
        p = self._s.p
        with self._s._pool.connection() as conn, conn.transaction():
            if self._created is not None:
                self._write_created(conn, self._created)
            conn.execute(
                f"INSERT INTO {p}events (event_id, alert_id, action, done_ns) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
                (event_id, self._alert.alert_id, result, time.time_ns()),
            )
            if self._owner is not None:
                conn.execute(
                    f"DELETE FROM {p}claims WHERE alert_id = %s AND owner = %s",
                    (self._alert.alert_id, self._owner),
                )
        self._created = None
        self.released = self._owner is not None


class PostgresHubStore:
    """:class:`~edge_agent.hub.store.HubStore` in PostgreSQL. ``table_prefix`` may name a
    schema (``hub.``) and must exist beforehand if it does."""

    def __init__(
        self, dsn: str, *, pool_size: int = 8, table_prefix: str = "hub_", timeout_s: float = 10.0
    ) -> None:
        if not _PREFIX_RE.match(table_prefix):
            raise StoreError(f"bad table prefix {table_prefix!r}")
        self.p = table_prefix
        self._pool = PgPool(dsn, pool_size, timeout_s)
        try:
            self._create_tables(table_prefix)
        except BaseException:
            self._pool.close()
            raise

    def _create_tables(self, table_prefix: str) -> None:
        index_prefix = table_prefix.split(".")[-1]
        with self._pool.connection() as conn, conn.transaction():
            # Two replicas starting together must not race on CREATE TABLE.
            conn.execute("SELECT pg_advisory_xact_lock(7242001)")
            # Checked before anything is created: a later release's tables are refused.
            conn.execute(_VERSION_TABLE.format(p=table_prefix))
            row = conn.execute(f"SELECT version FROM {table_prefix}schema_version").fetchone()
            where = f"PostgreSQL table {table_prefix}schema_version"  # never the DSN
            check("hub store", where, None if row is None else row[0], SCHEMA_VERSION)
            conn.execute(_SCHEMA.format(p=table_prefix, n=index_prefix))
            conn.execute(ALARM_EVENTS_TABLE.format(p=table_prefix, n=index_prefix, big="BIGINT"))
            conn.execute(
                f"INSERT INTO {table_prefix}schema_version (version) VALUES (%s) "
                "ON CONFLICT (only_row) DO UPDATE SET version = EXCLUDED.version",
                (SCHEMA_VERSION,),
            )

    @property
    def pool(self) -> PgPool:
        """The connections (the plant data tables share them)."""
        return self._pool

    def _one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        with self._pool.connection() as conn:
            row: tuple[Any, ...] | None = conn.execute(sql, args).fetchone()
            return row

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            return list(conn.execute(sql, args).fetchall())

    def _exec(self, sql: str, args: tuple[Any, ...]) -> None:
        with self._pool.connection() as conn:
            conn.execute(sql, args)

    def ledger(
        self, alert: AlertRecord, start: EventStart | None = None, owner: str | None = None
    ) -> HubLedger:
        return _Ledger(self, alert, start, owner)

    async def begin_event_async(
        self,
        alert: AlertRecord,
        event_id: str,
        owner: str,
        lease_ns: int,
        *,
        check_pending: bool,
        begin_create: bool = False,
        site: str | None = None,
    ) -> EventStart:
        return await asyncio.to_thread(
            self.begin_event,
            alert,
            event_id,
            owner,
            lease_ns,
            check_pending=check_pending,
            site=site,
        )

    def begin_event(
        self,
        alert: AlertRecord,
        event_id: str,
        owner: str,
        lease_ns: int,
        *,
        check_pending: bool,
        begin_create: bool = False,  # not folded in here: the ledger begins the create itself
        site: str | None = None,
    ) -> EventStart:
        p = self.p
        with self._pool.connection() as conn:
            if site is not None:
                ids = (alert.alert_id, event_id, event_id, alert.alert_id)
                if foreign_sites(conn.execute(self._sites_sql, ids).fetchall(), site):
                    return FOREIGN_START
            row = conn.execute(
                f"SELECT e.action, a.work_order_id FROM {p}events e LEFT JOIN {p}alerts a "
                "ON a.alert_id = e.alert_id WHERE e.event_id = %s",
                (event_id,),
            ).fetchone()
            if row is not None:
                result = stored_result(event_id, alert.alert_id, *row)
                return EventStart(result, False, False, result.work_order_id)
            if (
                check_pending
                and conn.execute(
                    f"SELECT 1 FROM {p}pending WHERE alert_id = %s LIMIT 1", (alert.alert_id,)
                ).fetchone()
            ):
                return EventStart(None, True, False)
            if not self._claim(conn, alert.alert_id, owner, lease_ns):
                return EventStart(None, False, False)
            created = conn.execute(
                f"INSERT INTO {p}alerts AS t (alert_id, site, asset, rule, raised_ns) VALUES "
                "(%s, %s, %s, %s, %s) ON CONFLICT (alert_id) DO UPDATE SET site = t.site "
                "RETURNING work_order_id",
                (alert.alert_id, alert.site, alert.asset, alert.rule, alert.raised_ns),
            ).fetchone()
        return EventStart(None, False, True, None if created is None else opt_int(created[0]))

    def record_alert(self, alert: AlertRecord) -> None:
        self._exec(
            f"INSERT INTO {self.p}alerts (alert_id, site, asset, rule, raised_ns) VALUES "
            "(%s, %s, %s, %s, %s) ON CONFLICT (alert_id) DO NOTHING",
            (alert.alert_id, alert.site, alert.asset, alert.rule, alert.raised_ns),
        )

    def claim(self, alert_id: str, owner: str, lease_ns: int) -> bool:
        with self._pool.connection() as conn:
            return self._claim(conn, alert_id, owner, lease_ns)

    def _claim(
        self, conn: psycopg.Connection[Any], alert_id: str, owner: str, lease_ns: int
    ) -> bool:
        now = time.time_ns()
        row = conn.execute(
            f"INSERT INTO {self.p}claims AS c (alert_id, owner, until_ns) VALUES (%s, %s, %s) "
            "ON CONFLICT (alert_id) DO UPDATE SET owner = excluded.owner, "
            "until_ns = excluded.until_ns WHERE c.until_ns < %s OR c.owner = excluded.owner "
            "RETURNING owner",
            (alert_id, owner, now + lease_ns, now),
        ).fetchone()
        return row is not None

    def release(self, alert_id: str, owner: str) -> None:
        self._exec(
            f"DELETE FROM {self.p}claims WHERE alert_id = %s AND owner = %s", (alert_id, owner)
        )

    @property
    def _sites_sql(self) -> str:
        """:meth:`sites_of`'s query: (alert_id, event_id, event_id, alert_id)."""
        p = self.p
        return (
            f"SELECT site FROM {p}alerts WHERE alert_id = %s "
            f"UNION SELECT a.site FROM {p}events e JOIN {p}alerts a ON a.alert_id = e.alert_id "
            "WHERE e.event_id = %s "
            f"UNION SELECT site FROM {p}pending WHERE event_id = %s OR alert_id = %s"
        )

    def sites_of(self, alert_id: str, event_id: str) -> set[str]:
        rows = self._all(self._sites_sql, (alert_id, event_id, event_id, alert_id))
        return {str(row[0]) for row in rows}

    async def sites_of_async(self, alert_id: str, event_id: str) -> set[str]:
        return await asyncio.to_thread(self.sites_of, alert_id, event_id)

    def result_of(self, event_id: str) -> StoredResult | None:
        row = self._one(
            f"SELECT e.alert_id, e.action, a.work_order_id FROM {self.p}events e "
            f"LEFT JOIN {self.p}alerts a ON a.alert_id = e.alert_id WHERE e.event_id = %s",
            (event_id,),
        )
        return None if row is None else stored_result(event_id, *row)

    def record_rejection(self, event_id: str, alert_id: str, reason: str) -> None:
        self._exec(
            f"INSERT INTO {self.p}events (event_id, alert_id, action, done_ns) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
            (event_id, alert_id, f"{REJECTED_ACTION}:{reason}", time.time_ns()),
        )

    def failure(self) -> str | None:
        return None  # no thread of its own: every call reports its own failure

    def park(
        self, site: str, event_id: str, alert_id: str, payload: str, reason: str, hold_ns: int = 0
    ) -> None:
        now = time.time_ns()
        self._exec(
            f"INSERT INTO {self.p}pending AS t (event_id, site, alert_id, payload, reason, "
            "received_ns, until_ns) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) "
            "DO UPDATE SET until_ns = GREATEST(t.until_ns, excluded.until_ns)",
            (event_id, site, alert_id, payload, reason, now, now + hold_ns if hold_ns else 0),
        )

    def has_pending(self, alert_id: str) -> bool:
        row = self._one(f"SELECT 1 FROM {self.p}pending WHERE alert_id = %s LIMIT 1", (alert_id,))
        return row is not None

    def take_pending(self, site: str, owner: str, lease_ns: int, limit: int) -> list[PendingEvent]:
        now = time.time_ns()
        rows = self._all(
            TAKE_PENDING_SQL.format(p=self.p, x="%s", lock=" FOR UPDATE SKIP LOCKED"),
            (owner, now + lease_ns, site, now, limit),
        )
        return pending_events(rows)

    def unpark(self, event_id: str) -> None:
        self._exec(f"DELETE FROM {self.p}pending WHERE event_id = %s", (event_id,))

    def prune_events(self, older_than_ns: int, keep_newest_ns: int | None = None) -> int:
        with self._pool.connection() as conn:
            if keep_newest_ns is None:
                cursor = conn.execute(
                    f"DELETE FROM {self.p}events WHERE done_ns < %s", (older_than_ns,)
                )
            else:
                cursor = conn.execute(
                    f"DELETE FROM {self.p}events WHERE done_ns < %s "
                    f"AND done_ns < (SELECT MAX(done_ns) FROM {self.p}events) - %s",
                    (older_than_ns, keep_newest_ns),
                )
            return int(cursor.rowcount)

    def pending_counts(self) -> dict[str, int]:
        rows = self._all(f"SELECT site, count(*) FROM {self.p}pending GROUP BY site")
        return {str(r[0]): int(r[1]) for r in rows}

    def work_order(self, site: str, work_order_id: int) -> WorkOrderRef | None:
        row = self._one(
            f"SELECT alert_id, asset, rule, status FROM {self.p}work_orders "
            "WHERE site = %s AND work_order_id = %s",
            (site, work_order_id),
        )
        return None if row is None else work_order_ref(site, work_order_id, *row)

    def apply_status(
        self, delivery_key: str, site: str, work_order_id: int, status: str, occurred_ns: int
    ) -> WorkOrderRef | None:
        p = self.p
        with self._pool.connection() as conn, conn.transaction():
            row = conn.execute(
                f"SELECT alert_id, asset, rule FROM {p}work_orders WHERE site = %s AND "
                "work_order_id = %s FOR UPDATE",
                (site, work_order_id),
            ).fetchone()
            if row is None:
                return None
            fresh = conn.execute(
                f"INSERT INTO {p}webhook_deliveries (delivery_key, received_ns) VALUES (%s, %s) "
                "ON CONFLICT (delivery_key) DO NOTHING RETURNING delivery_key",
                (delivery_key, time.time_ns()),
            ).fetchone()
            if fresh is None:
                return None
            current = conn.execute(
                f"UPDATE {p}work_orders SET status = CASE WHEN status_ns <= %s THEN %s "
                "ELSE status END, done_ns = CASE WHEN status_ns > %s THEN done_ns "
                "WHEN %s = 'DONE' THEN %s ELSE NULL END, status_ns = GREATEST(status_ns, %s) "
                "WHERE site = %s AND work_order_id = %s RETURNING status",
                (
                    occurred_ns,
                    status,
                    occurred_ns,
                    status,
                    occurred_ns,
                    occurred_ns,
                    site,
                    work_order_id,
                ),
            ).fetchone()
        status_now = status if current is None else current[0]
        return work_order_ref(site, work_order_id, row[0], row[1], row[2], status_now)

    def sites_of_work_order(self, work_order_id: int) -> list[str]:
        rows = self._all(
            f"SELECT site FROM {self.p}work_orders WHERE work_order_id = %s ORDER BY site",
            (work_order_id,),
        )
        return [str(r[0]) for r in rows]

    def parked(self, site: str | None, limit: int) -> list[ParkedEvent]:
        where = " WHERE site = %s" if site is not None else ""
        args: tuple[Any, ...] = ((site,) if site is not None else ()) + (limit,)
        rows = self._all(
            f"SELECT {PARKED_COLUMNS} FROM {self.p}pending{where} "
            "ORDER BY received_ns, event_id LIMIT %s",
            args,
        )
        return parked_events(rows)

    def kpis(self, since_ns: int = 0) -> list[KpiRow]:
        alerts, orders, first_time, to_normal = (
            self._all(sql.format(p=self.p, since=since_ns))
            for sql in (
                KPI_ALERTS_SQL,
                KPI_ORDERS_SQL,
                KPI_FIRST_TIME_FIX_SQL,
                KPI_TIME_TO_NORMAL_SQL,
            )
        )
        return merge_kpis(alerts, orders, lifecycle_kpis(first_time, to_normal))

    def record_alarm_event(self, record: AlarmEventRecord) -> None:
        sql = INSERT_ALARM_EVENT_SQL.format(p=self.p, x="%s")
        self._exec(sql, record.row(time.time_ns()))

    def close(self) -> None:
        self._pool.close()
