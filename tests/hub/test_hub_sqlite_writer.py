"""The hub's SQLite writer (hub/sqlite_writer.py): one thread, group commit; a caller that is
cancelled while its operation waits must not take the writer down with it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from edge_agent.hub.sqlite_writer import SqliteWriter


def _table(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")


async def test_a_cancelled_caller_leaves_the_writer_running(tmp_path: Path) -> None:
    writer = SqliteWriter(tmp_path / "w.sqlite", _table)
    try:
        gate = threading.Event()
        busy = writer.submit(lambda db: gate.wait(30))  # holds the writer's thread
        waiting = asyncio.create_task(
            writer.call(lambda db: db.execute("INSERT INTO t VALUES (1)"))
        )
        await asyncio.sleep(0)  # the call is queued behind the busy one
        waiting.cancel()  # e.g. the hub stopping its workers
        with pytest.raises(asyncio.CancelledError):
            await waiting
        gate.set()
        await asyncio.wrap_future(busy)
        # The cancelled operation still ran (it may already have been committed), and the
        # writer lives on: it did not die resolving a future its caller had cancelled.
        count = await writer.call(lambda db: db.execute("SELECT count(*) FROM t").fetchone()[0])
        assert count == 1
        assert writer.failure is None
    finally:
        writer.close()


def test_a_file_that_cannot_be_prepared_is_closed_and_refused(tmp_path: Path) -> None:
    def refuse(db: sqlite3.Connection) -> None:
        raise sqlite3.DatabaseError("not a hub store")

    with pytest.raises(sqlite3.DatabaseError, match="not a hub store"):
        SqliteWriter(tmp_path / "w.sqlite", refuse)
