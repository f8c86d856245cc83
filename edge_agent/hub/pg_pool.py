"""The hub's PostgreSQL connections: a fixed pool, and the one place where psycopg's errors
become the store's (:class:`StoreError`: retried; :class:`StoreRejected`: these values never
fit). A failure names its kind and SQLSTATE, never the DSN (it may hold a password).
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator
from typing import Any, Final

import psycopg

from edge_agent.hub.store import StoreError, StoreRejected

DATABASE_NOT_AS_BUILT: Final = frozenset({"42501", "42P01", "42703", "3F000"})
"""SQLSTATEs of a database not as the hub built it: a privilege revoked, a table, a column
or the schema missing. psycopg raises them as ``ProgrammingError``, but they are about the
database, not the values, and every alert would fail alike: retried, never poison."""


class PgPool:
    """A fixed set of autocommit connections, lent one at a time (psycopg_pool is not a
    dependency; the hub needs no more than this)."""

    def __init__(self, dsn: str, size: int, connect_timeout_s: float) -> None:
        self._free: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._dsn = dsn
        self._timeout = connect_timeout_s
        for _ in range(size):
            self._free.put(self._connect())

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=max(1, round(self._timeout))
            )
        except psycopg.Error as exc:
            # The DSN may hold a password: name the failure, never the DSN.
            raise StoreError(f"cannot connect to PostgreSQL: {type(exc).__name__}") from exc

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self._free.get()
        try:
            if conn.closed or conn.broken:
                conn = self._connect()
            yield conn
        except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
            if exc.sqlstate in DATABASE_NOT_AS_BUILT:
                # A grant revoked, a table missing: the database failing, not the values.
                raise StoreError(f"PostgreSQL: {type(exc).__name__}: {exc.sqlstate}") from exc
            # These values can never be written (out of range, a constraint): not an outage.
            raise StoreRejected(f"PostgreSQL: {type(exc).__name__}: {exc.sqlstate}") from exc
        except psycopg.Error as exc:
            if conn.broken:
                # The server went away: the idle connections are dead too. Closed, they are
                # reconnected on their next use instead of each failing one call first.
                self._close_idle()
            raise StoreError(f"PostgreSQL: {type(exc).__name__}: {exc.sqlstate}") from exc
        except (OverflowError, TypeError, ValueError) as exc:
            raise StoreRejected(f"PostgreSQL refused the values: {type(exc).__name__}") from exc
        finally:
            self._free.put(conn)

    def _close_idle(self) -> None:
        idle = []
        with contextlib.suppress(queue.Empty):
            while True:
                idle.append(self._free.get_nowait())
        for conn in idle:
            with contextlib.suppress(psycopg.Error):
                conn.close()
            self._free.put(conn)

    def close(self) -> None:
        while True:
            try:
                self._free.get_nowait().close()
            except queue.Empty:
                return
