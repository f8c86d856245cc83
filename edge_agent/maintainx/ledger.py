"""The durable map alert id → work order id, and the set of events already applied.

MaintainX has no idempotency key, so this ledger is what makes "one alarm episode, one work
order" true across retries, restarts and power loss. Every write is committed (and, for
SQLite, fsynced) before the caller moves on. The hub keeps the same protocol in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from pathlib import Path
from typing import Final, Protocol, cast

from edge_agent.common.schema_version import SchemaVersionError, check_sqlite, stamp_sqlite
from edge_agent.common.sqlite_wal import JOURNAL_SIZE_LIMIT, truncate_wal
from edge_agent.errors import EdgeAgentError

WAL_AUTOCHECKPOINT_PAGES: Final = 200
"""An automatic checkpoint every ~800 KB of WAL (SQLite's default, 1000 pages, is ~4 MB)."""
ROW_OVERHEAD: Final = 24
"""Bytes counted per row beside its text (its integers), for :attr:`SqliteLedger.data_bytes`."""


class WorkOrderLedger(Protocol):
    """What :func:`edge_agent.maintainx.sync.apply_alert` needs to stay idempotent.

    The calls are coroutines: each backend decides whether one blocks (and hops to a
    thread: :class:`ThreadedLedger`) or is answered from memory on the event loop (the
    hub's ledger, from what ``begin_event`` already read).
    """

    async def work_order_for(self, alert_id: str) -> int | None:
        """The work order made for this alarm episode, if one is known."""
        ...

    async def begin_create(self, alert_id: str) -> bool:
        """Record that a create is about to be sent. Returns True when an earlier attempt for
        this alert was begun and never confirmed: it may have reached MaintainX."""
        ...

    async def abandon_create(self, alert_id: str) -> None:
        """The create begun last certainly did not reach MaintainX (refused connection,
        4xx, 429, 5xx): the next ``begin_create`` need not report it. A ledger may ignore
        this: every failed create is then followed by a lookup before the next attempt,
        still correct, at the cost of requests under load."""
        ...

    async def record_created(self, alert_id: str, work_order_id: int) -> None:
        """Record the work order made (or found) for this alert."""
        ...

    async def is_done(self, event_id: str) -> bool:
        """True when this event was already applied (or deliberately skipped)."""
        ...

    async def mark_done(self, event_id: str, result: str) -> None:
        """Record that this event is finished, with a short result for people."""
        ...


class ThreadedLedger:
    """:class:`WorkOrderLedger` over a :class:`SqliteLedger`: every call may wait for an
    fsync, so every call runs in a worker thread, never on the event loop."""

    def __init__(self, ledger: SqliteLedger) -> None:
        self._ledger = ledger

    async def work_order_for(self, alert_id: str) -> int | None:
        return await asyncio.to_thread(self._ledger.work_order_for, alert_id)

    async def begin_create(self, alert_id: str) -> bool:
        return await asyncio.to_thread(self._ledger.begin_create, alert_id)

    async def abandon_create(self, alert_id: str) -> None:
        await asyncio.to_thread(self._ledger.abandon_create, alert_id)

    async def record_created(self, alert_id: str, work_order_id: int) -> None:
        await asyncio.to_thread(self._ledger.record_created, alert_id, work_order_id)

    async def is_done(self, event_id: str) -> bool:
        return await asyncio.to_thread(self._ledger.is_done, event_id)

    async def mark_done(self, event_id: str, result: str) -> None:
        await asyncio.to_thread(self._ledger.mark_done, event_id, result)


SCHEMA_VERSION: Final = 1
"""The ledger's format (``PRAGMA user_version``); see :mod:`edge_agent.common.schema_version`."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS work_orders (
    alert_id        TEXT PRIMARY KEY,
    work_order_id   INTEGER,
    create_attempts INTEGER NOT NULL DEFAULT 0,
    updated_ns      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    event_id  TEXT PRIMARY KEY,
    result    TEXT NOT NULL,
    done_ns   INTEGER NOT NULL
);
"""


class LedgerError(EdgeAgentError):
    """The ledger's database cannot be opened or written."""


class SqliteLedger:
    """The site's ledger in one SQLite file (WAL, ``synchronous=FULL``). Its calls block;
    :class:`ThreadedLedger` is its :class:`WorkOrderLedger` face for async code.

    Safe to call from several threads (one connection behind a lock).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        opened: sqlite3.Connection | None = None  # closed again if the rest fails
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._db = opened = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout=5000")
            # First, before even the journal mode is written: a later release's file is
            # refused untouched (NewerFormatError).
            check_sqlite(self._db, "work order ledger", str(path), SCHEMA_VERSION)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            # The WAL shrinks back to this after each checkpoint (it keeps its largest size
            # otherwise), and is checkpointed before it grows far past it.
            self._db.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            self._db.executescript(_SCHEMA)
            stamp_sqlite(self._db, SCHEMA_VERSION)
            self.data_bytes = self._measure()
        except (sqlite3.Error, SchemaVersionError) as exc:
            _close_quietly(opened)
            raise LedgerError(f"cannot open the work order ledger {path}: {exc}") from exc
        except BaseException:
            _close_quietly(opened)
            raise

    def _measure(self) -> int:
        """What the rows hold (text lengths plus their integers): counted against
        ``storage.max_bytes`` (the file's pages are reused after a prune, not returned)."""
        (events,) = self._db.execute(
            "SELECT coalesce(sum(length(event_id) + length(result) + ?), 0) FROM events",
            (ROW_OVERHEAD,),
        ).fetchone()
        (alerts,) = self._db.execute(
            "SELECT coalesce(sum(length(alert_id) + ?), 0) FROM work_orders", (ROW_OVERHEAD,)
        ).fetchone()
        return int(events) + int(alerts)

    def newest_ns(self) -> int | None:
        """The wall-clock time of the most recent row (an event applied or a work order
        touched), or None when the ledger is empty."""
        row = self._one(
            "SELECT MAX(t) FROM (SELECT MAX(done_ns) AS t FROM events "
            "UNION ALL SELECT MAX(updated_ns) FROM work_orders)",
            (),
        )
        return None if row is None or row[0] is None else int(cast(int, row[0]))

    def prune(self, older_than_ns: int) -> int:
        """Forget events applied and work orders last touched before ``older_than_ns``
        (wall clock); returns the rows removed. The WAL is truncated after."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                removed = self._db.execute(
                    "DELETE FROM events WHERE done_ns < ?", (older_than_ns,)
                ).rowcount
                removed += self._db.execute(
                    "DELETE FROM work_orders WHERE updated_ns < ?", (older_than_ns,)
                ).rowcount
                self._db.execute("COMMIT")
                self.data_bytes = self._measure()
            except sqlite3.Error as exc:
                self._rollback()
                raise LedgerError(f"ledger prune failed: {exc}") from exc
            truncate_wal(self._db)
        return int(removed)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _one(self, sql: str, args: tuple[object, ...]) -> tuple[object, ...] | None:
        with self._lock:
            try:
                row: tuple[object, ...] | None = self._db.execute(sql, args).fetchone()
            except sqlite3.Error as exc:
                raise LedgerError(f"ledger read failed: {exc}") from exc
        return row

    def work_order_for(self, alert_id: str) -> int | None:
        row = self._one("SELECT work_order_id FROM work_orders WHERE alert_id = ?", (alert_id,))
        if row is None or row[0] is None:
            return None
        return int(str(row[0]))

    def begin_create(self, alert_id: str) -> bool:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute(
                    "SELECT work_order_id, create_attempts FROM work_orders WHERE alert_id = ?",
                    (alert_id,),
                ).fetchone()
                self._db.execute(
                    "INSERT INTO work_orders (alert_id, create_attempts, updated_ns) "
                    "VALUES (?, 1, ?) ON CONFLICT(alert_id) DO UPDATE SET "
                    "create_attempts = create_attempts + 1, updated_ns = excluded.updated_ns",
                    (alert_id, time.time_ns()),
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise LedgerError(f"ledger write failed: {exc}") from exc
            if row is None:
                self.data_bytes += len(alert_id) + ROW_OVERHEAD
        return row is not None and row[0] is None and int(row[1]) > 0

    def abandon_create(self, alert_id: str) -> None:
        self._write(
            "UPDATE work_orders SET create_attempts = 0, updated_ns = ? "
            "WHERE alert_id = ? AND work_order_id IS NULL",
            (time.time_ns(), alert_id),
        )

    def record_created(self, alert_id: str, work_order_id: int) -> None:
        # At most one row per alert, most often begun (and counted) by begin_create.
        known = self._one("SELECT 1 FROM work_orders WHERE alert_id = ?", (alert_id,))
        self._write(
            "INSERT INTO work_orders (alert_id, work_order_id, updated_ns) VALUES (?, ?, ?) "
            "ON CONFLICT(alert_id) DO UPDATE SET work_order_id = excluded.work_order_id, "
            "updated_ns = excluded.updated_ns",
            (alert_id, int(work_order_id), time.time_ns()),
        )
        if known is None:
            self.data_bytes += len(alert_id) + ROW_OVERHEAD

    def is_done(self, event_id: str) -> bool:
        return self._one("SELECT 1 FROM events WHERE event_id = ?", (event_id,)) is not None

    def mark_done(self, event_id: str, result: str) -> None:
        self._write(
            "INSERT OR REPLACE INTO events (event_id, result, done_ns) VALUES (?, ?, ?)",
            (event_id, result, time.time_ns()),
        )
        self.data_bytes += len(event_id) + len(result) + ROW_OVERHEAD

    def result_of(self, event_id: str) -> str | None:
        """The result recorded for an event (for ``edge-agent outbox`` and tests)."""
        row = self._one("SELECT result FROM events WHERE event_id = ?", (event_id,))
        return None if row is None else str(row[0])

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        with self._lock:
            try:
                self._db.execute(sql, args)  # autocommit: one fsynced transaction
            except sqlite3.Error as exc:
                raise LedgerError(f"ledger write failed: {exc}") from exc

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")


def _close_quietly(db: sqlite3.Connection | None) -> None:
    if db is not None:
        with contextlib.suppress(sqlite3.Error):
            db.close()
