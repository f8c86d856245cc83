"""The hub's SQLite writer (hub/sqlite_writer.py): one thread, group commit; a caller that is
cancelled while its operation waits must not take the writer down with it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from edge_agent.hub.sqlite_writer import Op, SqliteWriter
from edge_agent.hub.store import StoreError, StoreRejected


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


async def test_the_calls_of_one_loop_pass_reach_the_writer_together(tmp_path: Path) -> None:
    """Issue 16: the alerts of one burst hand their store calls to the writer's thread as
    one operation (one hand-off each way, not one per call); each still gets its own
    outcome, and one call's failure is rolled back alone while the others commit."""
    writer = SqliteWriter(tmp_path / "w.sqlite", _table)
    submitted: list[object] = []
    submit = writer.submit

    def counting_submit(op: Op) -> concurrent.futures.Future[Any]:
        submitted.append(op)
        return submit(op)

    writer.submit = counting_submit  # type: ignore[method-assign]

    def insert(x: int) -> Op:
        return lambda db: db.execute("INSERT INTO t VALUES (?)", (x,)).rowcount

    def insert_then_fail(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO t VALUES (99)")
        raise ValueError("refused after writing")

    try:
        outcomes = await asyncio.gather(
            writer.call(insert(1)),
            writer.call(insert_then_fail),
            writer.call(insert(2)),
            return_exceptions=True,
        )
        assert len(submitted) == 1  # one hand-off for the three calls
        assert outcomes[0] == 1 and outcomes[2] == 1
        assert isinstance(outcomes[1], StoreRejected)  # a value refused: never retried
        rows = await writer.call(lambda db: db.execute("SELECT x FROM t ORDER BY x").fetchall())
        assert rows == [(1,), (2,)]  # the failed call's own insert was rolled back
    finally:
        writer.close()


async def test_gathered_calls_all_fail_when_the_writer_dies(tmp_path: Path) -> None:
    """A writer that dies under a gathered batch fails every one of its calls (none waits
    forever), and later calls are refused at once."""
    writer = SqliteWriter(tmp_path / "w.sqlite", _table)
    try:

        def die(db: sqlite3.Connection) -> None:
            raise SystemExit("the writer thread ends")

        calls = [
            writer.call(lambda db: db.execute("INSERT INTO t VALUES (1)")),
            writer.call(die),
            writer.call(lambda db: db.execute("INSERT INTO t VALUES (2)")),
        ]
        outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
        assert all(isinstance(o, StoreError) for o in outcomes), outcomes
        assert writer.failure is not None
        with pytest.raises(StoreError):
            await asyncio.wait_for(writer.call(lambda db: None), 5)
    finally:
        writer.close()
