"""The hub's store in one SQLite file: the default for a single replica.

WAL with ``synchronous=FULL`` (a committed write survives power loss). One writer thread
runs every operation and commits the operations that arrived together in one transaction
(group commit): concurrent alerts share an fsync instead of queueing for one each.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from edge_agent.common.schema_version import check_sqlite, stamp_sqlite
from edge_agent.common.sqlite_wal import JOURNAL_SIZE_LIMIT, truncate_wal
from edge_agent.hub.sqlite_writer import Op, SqliteWriter
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

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY, site TEXT NOT NULL, asset TEXT NOT NULL, rule TEXT NOT NULL,
    raised_ns INTEGER NOT NULL, work_order_id INTEGER, create_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY, alert_id TEXT NOT NULL, action TEXT NOT NULL,
    done_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS work_orders (
    site TEXT NOT NULL, work_order_id INTEGER NOT NULL, alert_id TEXT NOT NULL,
    asset TEXT NOT NULL, rule TEXT NOT NULL, status TEXT NOT NULL, created_ns INTEGER NOT NULL,
    status_ns INTEGER NOT NULL, done_ns INTEGER, PRIMARY KEY (site, work_order_id)
);
CREATE TABLE IF NOT EXISTS pending (
    event_id TEXT PRIMARY KEY, site TEXT NOT NULL, alert_id TEXT NOT NULL,
    payload TEXT NOT NULL, reason TEXT NOT NULL, received_ns INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, owner TEXT, until_ns INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS pending_alert ON pending (alert_id);
CREATE INDEX IF NOT EXISTS pending_site ON pending (site, received_ns);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    delivery_key TEXT PRIMARY KEY, received_ns INTEGER NOT NULL
);
"""


def _prepare(path: Path) -> Op:
    def prepare(db: sqlite3.Connection) -> None:
        db.execute("PRAGMA busy_timeout=5000")
        # First: a later release's file is refused untouched (NewerFormatError).
        check_sqlite(db, "hub store", str(path), SCHEMA_VERSION)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        db.executescript(_SCHEMA + ALARM_EVENTS_TABLE.format(p="", n="", big="INTEGER"))
        stamp_sqlite(db, SCHEMA_VERSION)

    return prepare


def _sites_op(alert_id: str, event_id: str) -> Op:
    """The sites that used ``alert_id`` or ``event_id`` before (rows of one column)."""
    return lambda db: _sites(db, alert_id, event_id)


def _sites(db: sqlite3.Connection, alert_id: str, event_id: str) -> list[Any]:
    return db.execute(
        "SELECT site FROM alerts WHERE alert_id = ? "
        "UNION SELECT a.site FROM events e JOIN alerts a ON a.alert_id = e.alert_id "
        "WHERE e.event_id = ? "
        "UNION SELECT site FROM pending WHERE event_id = ? OR alert_id = ?",
        (alert_id, event_id, event_id, alert_id),
    ).fetchall()


class _Claims:
    """Claims, in memory: a SQLite store serves one hub process, so a claim only has to keep
    that process's own workers apart, and it must not outlive the process (a restarted hub
    takes its alerts back at once). Not written to disk: no fsync per alert for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, tuple[str, int]] = {}

    def take(self, alert_id: str, owner: str, lease_ns: int) -> bool:
        now = time.time_ns()
        with self._lock:
            holder = self._held.get(alert_id)
            if holder is not None and holder[0] != owner and holder[1] >= now:
                return False
            self._held[alert_id] = (owner, now + lease_ns)
            return True

    def drop(self, alert_id: str, owner: str) -> None:
        with self._lock:
            holder = self._held.get(alert_id)
            if holder is not None and holder[0] == owner:
                del self._held[alert_id]


class _Ledger(HubLedger):
    """The :class:`WorkOrderLedger` of one alert on the hub's SQLite store."""

    def __init__(
        self,
        writer: SqliteWriter,
        claims: _Claims,
        alert: AlertRecord,
        start: EventStart | None,
        owner: str | None,
    ) -> None:
        super().__init__(alert, start, owner)
        self._w = writer
        self._claims = claims
        self._begun = None if start is None else start.create_begun

    async def begin_create(self, alert_id: str) -> bool:
        if self._begun is not None and alert_id == self._alert.alert_id:
            # begin_event began the create in its own transaction: answered from it.
            begun, self._begun = self._begun, None
            return begun
        return bool(await self._w.call(lambda db: _begin_create(db, self._alert, alert_id)))

    async def _stored_work_order(self, alert_id: str) -> int | None:
        row = await self._w.call(
            lambda db: db.execute(
                "SELECT work_order_id FROM alerts WHERE alert_id = ?", (alert_id,)
            ).fetchone()
        )
        return None if row is None else opt_int(row[0])

    async def _stored_event(self, event_id: str) -> bool:
        row = await self._w.call(
            lambda db: db.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone()
        )
        return row is not None

    async def _commit_created(self, created: tuple[str, int, int]) -> None:
        await self._w.call(lambda db: self._write_created(db, created))

    def _write_created(self, db: sqlite3.Connection, created: tuple[str, int, int]) -> None:
        a = self._alert
        alert_id, work_order_id, now = created
        db.execute(
            "INSERT INTO alerts (alert_id, site, asset, rule, raised_ns, work_order_id) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(alert_id) DO UPDATE SET "
            "work_order_id = excluded.work_order_id",
            (alert_id, a.site, a.asset, a.rule, a.raised_ns, work_order_id),
        )
        db.execute(
            "INSERT INTO work_orders (site, work_order_id, alert_id, asset, rule, status, "
            "created_ns, status_ns) VALUES (?, ?, ?, ?, ?, 'OPEN', ?, 0) "
            "ON CONFLICT(site, work_order_id) DO NOTHING",
            (a.site, work_order_id, alert_id, a.asset, a.rule, now),
        )

    async def mark_done(self, event_id: str, result: str) -> None:
        a = self._alert
        created = self._created

        def op(db: sqlite3.Connection) -> None:
            if created is not None:
                self._write_created(db, created)
            # The episode is recorded here (for the KPIs) when no create wrote it before.
            _record_alert(db, a)
            db.execute(
                "INSERT INTO events (event_id, alert_id, action, done_ns) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(event_id) DO NOTHING",
                (event_id, a.alert_id, result, time.time_ns()),
            )

        await self._w.call(op)
        self._created = None
        if self._owner is not None:
            self._claims.drop(a.alert_id, self._owner)
            self.released = True


class SqliteHubStore:
    """:class:`~edge_agent.hub.store.HubStore` in one SQLite file (one replica)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._claims = _Claims()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._w = SqliteWriter(path, _prepare(path))
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the hub store {path}: {exc}") from exc

    @property
    def writer(self) -> SqliteWriter:
        """The writer every operation runs on (the plant data tables share it)."""
        return self._w

    def ledger(
        self, alert: AlertRecord, start: EventStart | None = None, owner: str | None = None
    ) -> HubLedger:
        return _Ledger(self._w, self._claims, alert, start, owner)

    def begin_event(
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
        op = self._begin_op(alert, event_id, owner, lease_ns, check_pending, begin_create, site)
        start: EventStart = self._w.run(op)
        return start

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
        op = self._begin_op(alert, event_id, owner, lease_ns, check_pending, begin_create, site)
        start: EventStart = await self._w.call(op)
        return start

    def _begin_op(
        self,
        alert: AlertRecord,
        event_id: str,
        owner: str,
        lease_ns: int,
        check_pending: bool,
        begin_create: bool,
        site: str | None,
    ) -> Callable[[sqlite3.Connection], EventStart]:
        def op(db: sqlite3.Connection) -> EventStart:
            if site is not None and foreign_sites(_sites(db, alert.alert_id, event_id), site):
                return FOREIGN_START
            row = db.execute(
                "SELECT e.action, a.work_order_id FROM events e LEFT JOIN alerts a "
                "ON a.alert_id = e.alert_id WHERE e.event_id = ?",
                (event_id,),
            ).fetchone()
            if row is not None:
                result = stored_result(event_id, alert.alert_id, *row)
                return EventStart(result, False, False, result.work_order_id)
            if (
                check_pending
                and db.execute(
                    "SELECT 1 FROM pending WHERE alert_id = ? LIMIT 1", (alert.alert_id,)
                ).fetchone()
            ):
                return EventStart(None, True, False)
            if not self._claims.take(alert.alert_id, owner, lease_ns):
                return EventStart(None, False, False)
            wo = db.execute(
                "SELECT work_order_id FROM alerts WHERE alert_id = ?", (alert.alert_id,)
            ).fetchone()
            work_order_id = opt_int(wo[0]) if wo else None
            if begin_create and work_order_id is None:
                # The create will follow: begin it in this transaction (one fsync, one
                # hand-off to this thread fewer); the ledger answers begin_create from it.
                begun = _begin_create(db, alert, alert.alert_id)
                return EventStart(None, False, True, None, create_begun=begun)
            return EventStart(None, False, True, work_order_id)

        return op

    def record_alert(self, alert: AlertRecord) -> None:
        self._w.run(lambda db: _record_alert(db, alert))

    def claim(self, alert_id: str, owner: str, lease_ns: int) -> bool:
        return self._claims.take(alert_id, owner, lease_ns)

    def release(self, alert_id: str, owner: str) -> None:
        self._claims.drop(alert_id, owner)

    def sites_of(self, alert_id: str, event_id: str) -> set[str]:
        return {str(row[0]) for row in self._w.run(_sites_op(alert_id, event_id))}

    async def sites_of_async(self, alert_id: str, event_id: str) -> set[str]:
        # Straight to the writer: a to_thread hop before it cost more than the query
        # (issue 16: 13 % of the hub's CPU in a confirmed drain).
        return {str(row[0]) for row in await self._w.call(_sites_op(alert_id, event_id))}

    def result_of(self, event_id: str) -> StoredResult | None:
        row = self._w.run(
            lambda db: db.execute(
                "SELECT e.alert_id, e.action, a.work_order_id FROM events e "
                "LEFT JOIN alerts a ON a.alert_id = e.alert_id WHERE e.event_id = ?",
                (event_id,),
            ).fetchone()
        )
        return None if row is None else stored_result(event_id, *row)

    def record_rejection(self, event_id: str, alert_id: str, reason: str) -> None:
        self._w.run(
            lambda db: db.execute(
                "INSERT INTO events (event_id, alert_id, action, done_ns) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(event_id) DO NOTHING",
                (event_id, alert_id, f"{REJECTED_ACTION}:{reason}", time.time_ns()),
            )
        )

    def failure(self) -> str | None:
        return self._w.failure

    def prune_events(self, older_than_ns: int, keep_newest_ns: int | None = None) -> int:
        args: tuple[int, ...]
        if keep_newest_ns is None:
            sql, args = "DELETE FROM events WHERE done_ns < ?", (older_than_ns,)
        else:
            sql = (
                "DELETE FROM events WHERE done_ns < ? "
                "AND done_ns < (SELECT MAX(done_ns) FROM events) - ?"
            )
            args = (older_than_ns, keep_newest_ns)
        removed: int = self._w.run(lambda db: db.execute(sql, args).rowcount)
        # From a connection of its own: the writer's is inside a transaction when it runs ops.
        with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as db:
            truncate_wal(db)
        return removed

    def park(
        self, site: str, event_id: str, alert_id: str, payload: str, reason: str, hold_ns: int = 0
    ) -> None:
        now = time.time_ns()
        self._w.run(
            lambda db: db.execute(
                "INSERT INTO pending (event_id, site, alert_id, payload, reason, received_ns, "
                "until_ns) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(event_id) DO UPDATE SET "
                "until_ns = MAX(pending.until_ns, excluded.until_ns)",
                (event_id, site, alert_id, payload, reason, now, now + hold_ns if hold_ns else 0),
            )
        )

    def has_pending(self, alert_id: str) -> bool:
        row = self._w.run(
            lambda db: db.execute(
                "SELECT 1 FROM pending WHERE alert_id = ? LIMIT 1", (alert_id,)
            ).fetchone()
        )
        return row is not None

    def take_pending(self, site: str, owner: str, lease_ns: int, limit: int) -> list[PendingEvent]:
        now = time.time_ns()
        rows = self._w.run(
            lambda db: db.execute(
                TAKE_PENDING_SQL.format(p="", x="?", lock=""),
                (owner, now + lease_ns, site, now, limit),
            ).fetchall()
        )
        return pending_events(rows)

    def unpark(self, event_id: str) -> None:
        self._w.run(lambda db: db.execute("DELETE FROM pending WHERE event_id = ?", (event_id,)))

    def pending_counts(self) -> dict[str, int]:
        rows = self._w.run(
            lambda db: db.execute("SELECT site, count(*) FROM pending GROUP BY site").fetchall()
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def work_order(self, site: str, work_order_id: int) -> WorkOrderRef | None:
        row = self._w.run(
            lambda db: db.execute(
                "SELECT alert_id, asset, rule, status FROM work_orders "
                "WHERE site = ? AND work_order_id = ?",
                (site, work_order_id),
            ).fetchone()
        )
        return None if row is None else work_order_ref(site, work_order_id, *row)

    def apply_status(
        self, delivery_key: str, site: str, work_order_id: int, status: str, occurred_ns: int
    ) -> WorkOrderRef | None:
        def op(db: sqlite3.Connection) -> WorkOrderRef | None:
            row = db.execute(
                "SELECT alert_id, asset, rule FROM work_orders WHERE site = ? AND "
                "work_order_id = ?",
                (site, work_order_id),
            ).fetchone()
            if row is None:
                return None
            fresh = db.execute(
                "INSERT INTO webhook_deliveries (delivery_key, received_ns) VALUES (?, ?) "
                "ON CONFLICT(delivery_key) DO NOTHING RETURNING delivery_key",
                (delivery_key, time.time_ns()),
            ).fetchone()
            if fresh is None:
                return None
            db.execute(
                "UPDATE work_orders SET status = ?, status_ns = ?, done_ns = CASE WHEN ? = 'DONE' "
                "THEN ? ELSE NULL END WHERE site = ? AND work_order_id = ? AND status_ns <= ?",
                (status, occurred_ns, status, occurred_ns, site, work_order_id, occurred_ns),
            )
            current = db.execute(
                "SELECT status FROM work_orders WHERE site = ? AND work_order_id = ?",
                (site, work_order_id),
            ).fetchone()
            return work_order_ref(site, work_order_id, row[0], row[1], row[2], current[0])

        result: WorkOrderRef | None = self._w.run(op)
        return result

    def sites_of_work_order(self, work_order_id: int) -> list[str]:
        rows = self._w.run(
            lambda db: db.execute(
                "SELECT site FROM work_orders WHERE work_order_id = ? ORDER BY site",
                (work_order_id,),
            ).fetchall()
        )
        return [str(r[0]) for r in rows]

    def parked(self, site: str | None, limit: int) -> list[ParkedEvent]:
        where = " WHERE site = ?" if site is not None else ""
        sql = f"SELECT {PARKED_COLUMNS} FROM pending{where} ORDER BY received_ns, event_id LIMIT ?"  # noqa: S608 (constants only)
        args: tuple[Any, ...] = ((site,) if site is not None else ()) + (limit,)
        rows = self._w.run(lambda db: db.execute(sql, args).fetchall())
        return parked_events(rows)

    def kpis(self, since_ns: int = 0) -> list[KpiRow]:
        def op(db: sqlite3.Connection) -> tuple[list[Any], ...]:
            return tuple(
                db.execute(sql.format(p="", since=since_ns)).fetchall()
                for sql in (
                    KPI_ALERTS_SQL,
                    KPI_ORDERS_SQL,
                    KPI_FIRST_TIME_FIX_SQL,
                    KPI_TIME_TO_NORMAL_SQL,
                )
            )

        alerts, orders, first_time, to_normal = self._w.run(op)
        return merge_kpis(alerts, orders, lifecycle_kpis(first_time, to_normal))

    def record_alarm_event(self, record: AlarmEventRecord) -> None:
        sql = INSERT_ALARM_EVENT_SQL.format(p="", x="?")
        self._w.run(lambda db: db.execute(sql, record.row(time.time_ns())))

    def close(self) -> None:
        self._w.close()


def _begin_create(db: sqlite3.Connection, a: AlertRecord, alert_id: str) -> bool:
    """Count a create attempt; True when an earlier one was never confirmed."""
    row = db.execute(
        "INSERT INTO alerts (alert_id, site, asset, rule, raised_ns, create_attempts) "
        "VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT(alert_id) DO UPDATE SET "
        "create_attempts = create_attempts + 1 RETURNING work_order_id, create_attempts",
        (alert_id, a.site, a.asset, a.rule, a.raised_ns),
    ).fetchone()
    return earlier_create_unconfirmed(row)


def _record_alert(db: sqlite3.Connection, a: AlertRecord) -> None:
    """Remember the episode (first sighting wins)."""
    db.execute(
        "INSERT INTO alerts (alert_id, site, asset, rule, raised_ns) VALUES "
        "(?, ?, ?, ?, ?) ON CONFLICT(alert_id) DO NOTHING",
        (a.alert_id, a.site, a.asset, a.rule, a.raised_ns),
    )
