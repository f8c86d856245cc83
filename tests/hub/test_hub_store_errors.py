"""How the hub's stores read their database's errors: the database failing is retried
(``StoreError``: the broker keeps the alert), values that never fit are poison
(``StoreRejected``: the site dead-letters the alarm). Reading an outage as poison loses
alarms to a moment's trouble; reading a bad value as an outage retries it for ever."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.hub.pg_pool import PgPool
from edge_agent.hub.sqlite_writer import _translate
from edge_agent.hub.store import StoreError, StoreRejected
from tests.hub.conftest import PG_DSN

_NOMEM = textwrap.dedent(
    """
    import asyncio, sqlite3, sys
    from pathlib import Path
    from edge_agent.hub.sqlite_writer import SqliteWriter
    from edge_agent.hub.store import StoreError, StoreRejected

    def prepare(db):
        db.execute("CREATE TABLE t (x INTEGER)")
        # SQLite's allocator capped (process-wide, cannot be raised again: hence a
        # subprocess): the next big allocation fails with SQLITE_NOMEM, as on a host out of
        # memory. The database is failing for a moment; the alert's values are fine.
        db.execute("PRAGMA hard_heap_limit=4000000")

    async def main():
        writer = SqliteWriter(Path(sys.argv[1]), prepare)
        try:
            outcome = await asyncio.gather(
                writer.call(
                    lambda db: db.execute(
                        "SELECT length(zeroblob(?) || x'00')", (8_000_000,)
                    ).fetchone()
                ),
                return_exceptions=True,
            )
        finally:
            writer.close()
        error = outcome[0]
        print(type(error).__name__, type(error.__cause__).__name__, error)
        retried = isinstance(error, StoreError) and not isinstance(error, StoreRejected)
        return 0 if retried and isinstance(error.__cause__, MemoryError) else 1

    sys.exit(asyncio.run(main()))
    """
)


def test_sqlite_out_of_memory_is_retried_not_poison(tmp_path: Path) -> None:
    """SQLITE_NOMEM reaches Python as ``MemoryError``, not a ``sqlite3.Error``: it was read
    as refused values, and a moment of memory pressure dead-lettered the alarm (found by
    the review of the store's error reading)."""
    script = tmp_path / "nomem.py"
    script.write_text(_NOMEM)
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "h.sqlite")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_too_big_value_is_poison(tmp_path: Path) -> None:
    """SQLITE_TOOBIG is ``sqlite3.DataError``: these values never fit."""
    db = sqlite3.connect(tmp_path / "b.sqlite")
    db.execute("CREATE TABLE t (s TEXT)")
    db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1000)
    try:
        with pytest.raises(sqlite3.DataError) as raised:
            db.execute("INSERT INTO t VALUES (?)", ("x" * 2000,))
        assert isinstance(_translate(raised.value), StoreRejected)
    finally:
        db.close()


@pytest.fixture
def pg_pool(pg_schema: str) -> Iterator[PgPool]:
    pool = PgPool(PG_DSN, 1, 2.0)
    with pool.connection() as conn:
        conn.execute(f"SET search_path TO {pg_schema}")
        conn.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    yield pool
    pool.close()


def test_postgresql_a_missing_table_is_retried_not_poison(pg_pool: PgPool) -> None:
    """A table missing (a restore without it, a migration not run) is psycopg's
    ``ProgrammingError`` (42P01); it was read as values refused, and every alert was
    dead-lettered at its site. It is the database not as the hub built it: retried."""
    with pytest.raises(StoreError) as raised, pg_pool.connection() as conn:
        conn.execute("INSERT INTO no_such_table VALUES (1)")
    assert not isinstance(raised.value, StoreRejected)
    assert "42P01" in str(raised.value)
    # A value refused on the same pool is still poison.
    with pytest.raises(StoreRejected, match="23505"), pg_pool.connection() as conn:
        conn.execute("INSERT INTO t VALUES (1), (1)")


def test_postgresql_a_privilege_revoked_is_retried_not_poison(
    pg_pool: PgPool, pg_schema: str
) -> None:
    """A grant revoked from the hub's role (42501) is the database failing, not the values."""
    role = f"hubtest_ro_{uuid.uuid4().hex[:8]}"
    with pg_pool.connection() as conn:
        try:
            conn.execute(f"CREATE ROLE {role} NOLOGIN")
            conn.execute(f"GRANT USAGE ON SCHEMA {pg_schema} TO {role}")  # not the table
        except Exception as exc:  # not a superuser: the missing table above still holds
            pytest.skip(f"cannot create a role to revoke from: {exc}")
    try:
        with pytest.raises(StoreError) as raised, pg_pool.connection() as conn:
            conn.execute(f"SET ROLE {role}")
            try:
                conn.execute("INSERT INTO t VALUES (2)")
            finally:
                conn.execute("RESET ROLE")
        assert not isinstance(raised.value, StoreRejected)
        assert "42501" in str(raised.value)
    finally:
        with pg_pool.connection() as conn:
            conn.execute(f"REVOKE USAGE ON SCHEMA {pg_schema} FROM {role}")
            conn.execute(f"DROP ROLE {role}")
