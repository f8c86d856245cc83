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


def _deferred_fk(db: sqlite3.Connection) -> None:
    """A table whose foreign key is checked only at COMMIT: a real commit-time failure."""
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("CREATE TABLE IF NOT EXISTS p (id INTEGER PRIMARY KEY)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS t (x INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)"
    )
    db.execute("CREATE TABLE IF NOT EXISTS big (b BLOB)")
    db.execute("INSERT INTO p VALUES (1)")


def _insert(x: int) -> Op:
    return lambda db: db.execute("INSERT INTO t VALUES (?)", (x,)).rowcount


async def _count(writer: SqliteWriter) -> int:
    count: int = await writer.call(lambda db: db.execute("SELECT count(*) FROM t").fetchone()[0])
    return count


async def test_a_commit_that_fails_fails_every_gathered_call(tmp_path: Path) -> None:
    """Review of the gathered calls (issue 16): the commit of the batch fails (here a
    deferred foreign key, checked only at COMMIT): every call of the batch is told so, none
    is answered as committed, nothing of the batch is in the file, the writer lives on."""
    writer = SqliteWriter(tmp_path / "w.sqlite", _deferred_fk)
    try:
        outcomes = await asyncio.wait_for(
            asyncio.gather(
                writer.call(_insert(1)),
                writer.call(_insert(7)),  # no p row 7: the COMMIT fails
                writer.call(_insert(1)),
                return_exceptions=True,
            ),
            5,
        )
        assert all(isinstance(o, StoreError) for o in outcomes), outcomes
        assert not any(isinstance(o, StoreRejected) for o in outcomes)  # retried, not poison
        assert await _count(writer) == 0
        assert writer.failure is None
        assert await writer.call(_insert(1)) == 1  # the next batch commits
    finally:
        writer.close()


async def test_a_full_disk_in_one_call_fails_the_whole_batch(tmp_path: Path) -> None:
    """SQLite rolls the whole transaction back on a full disk (SQLITE_FULL), not only the
    statement: the failing call's savepoint is gone with the others' writes. Every call of
    the batch must then fail (a retry), none answered as committed."""
    writer = SqliteWriter(tmp_path / "w.sqlite", _deferred_fk)
    try:
        await writer.call(lambda db: db.execute("PRAGMA max_page_count=50"))
        outcomes = await asyncio.wait_for(
            asyncio.gather(
                writer.call(_insert(1)),
                writer.call(lambda db: db.execute("INSERT INTO big VALUES (zeroblob(1000000))")),
                writer.call(_insert(1)),
                return_exceptions=True,
            ),
            5,
        )
        assert all(isinstance(o, StoreError) for o in outcomes), outcomes
        assert not any(isinstance(o, StoreRejected) for o in outcomes)
        assert await _count(writer) == 0
        assert writer.failure is None
    finally:
        writer.close()


async def test_a_caller_cancelled_before_its_batch_is_sent_still_runs_alone(
    tmp_path: Path,
) -> None:
    """A caller cancelled while its call is gathered (not yet handed to the thread): its
    operation still runs once, the other calls of the pass get their own answers, and no
    call is left pending."""
    writer = SqliteWriter(tmp_path / "w.sqlite", _deferred_fk)
    try:
        first = asyncio.ensure_future(writer.call(_insert(1)))
        cancelled = asyncio.ensure_future(writer.call(_insert(1)))
        third = asyncio.ensure_future(writer.call(_insert(1)))
        await asyncio.sleep(0)  # the three are gathered; the batch is not sent yet
        cancelled.cancel()
        assert await asyncio.wait_for(first, 5) == 1
        assert await asyncio.wait_for(third, 5) == 1
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert await _count(writer) == 3
        assert writer._gathered == {}  # noqa: SLF001 - nothing held back for the loop
    finally:
        writer.close()


def _rows(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS r (x INTEGER PRIMARY KEY, b BLOB)")


async def test_a_malformed_database_is_retried_not_poison(tmp_path: Path) -> None:
    """A database page gone bad (a power loss on a disk that lies, a bad sector): SQLite's
    ``DatabaseError`` on a real file. Here it also breaks the call's savepoint, so the
    whole batch fails: retried, never poison (the broker keeps the alerts until the file is
    repaired). The next test holds the case where the batch survives the error."""
    path = tmp_path / "w.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    _rows(db)
    db.executemany("INSERT INTO r VALUES (?, randomblob(500))", [(x,) for x in range(200)])
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the rows in the file, not the WAL
    db.close()
    with path.open("r+b") as file:  # the table's pages; the schema's page stays readable
        file.seek(3 * 4096)
        file.write(b"\xa5" * 4 * 4096)
    writer = SqliteWriter(path, _rows)
    try:
        # A site's alert looked up on a bad page.
        outcome = await asyncio.gather(
            writer.call(lambda db: db.execute("SELECT sum(length(b)) FROM r").fetchone()),
            return_exceptions=True,
        )
        assert isinstance(outcome[0], StoreError), outcome
        assert not isinstance(outcome[0], StoreRejected)  # retried, not poison
        assert "malformed" in str(outcome[0])
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("error", "poison"),
    [
        (sqlite3.DatabaseError("database disk image is malformed"), False),
        (sqlite3.DatabaseError("file is not a database"), False),
        (sqlite3.InternalError("internal error"), False),
        (sqlite3.OperationalError("disk I/O error"), False),
        (sqlite3.IntegrityError("UNIQUE constraint failed: r.x"), True),
        (sqlite3.DataError("string or blob too big"), True),
        (sqlite3.ProgrammingError("Error binding parameter 1: type 'dict' is not supported"), True),
        (OverflowError("Python int too large to convert to SQLite INTEGER"), True),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), True),
        (MemoryError(), False),  # how SQLITE_NOMEM reaches Python
    ],
)
async def test_what_sqlite_raises_in_one_call_is_read_as_a_failing_database_or_refused_values(
    tmp_path: Path, error: Exception, poison: bool
) -> None:
    """When the transaction survives one call's error (the batch commits), the error alone
    decides: the database failing is retried, values refused are poison (as ``pg_pool``
    reads PostgreSQL's). Before, only ``OperationalError`` was retried: a ``DatabaseError``
    (a malformed page SQLite saw while the rest of the batch could still commit) made every
    alert it touched poison."""

    def fail(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO t VALUES (1)")
        raise error

    writer = SqliteWriter(tmp_path / "w.sqlite", _table)
    try:
        outcomes = await asyncio.gather(
            writer.call(fail), writer.call(_insert(2)), return_exceptions=True
        )
        assert isinstance(outcomes[0], StoreError), outcomes
        assert isinstance(outcomes[0], StoreRejected) is poison
        assert outcomes[0].__cause__ is error
        assert outcomes[1] == 1  # the batch committed: the other call's row is in
        assert await _count(writer) == 1
    finally:
        writer.close()


async def test_a_bug_in_one_call_is_handed_on_as_it_is(tmp_path: Path) -> None:
    """An operation's own bug is neither the database failing nor values refused: the caller
    gets it as raised (the consumer's path for surprises: one more try, then poison), as
    from PostgreSQL; the batch's other calls commit."""

    def buggy(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO t VALUES (1)")
        raise KeyError("a field the operation expected")

    writer = SqliteWriter(tmp_path / "w.sqlite", _table)
    try:
        outcomes = await asyncio.gather(
            writer.call(buggy), writer.call(_insert(2)), return_exceptions=True
        )
        assert type(outcomes[0]) is KeyError, outcomes
        assert outcomes[1] == 1
        assert await _count(writer) == 1  # the buggy call's row was rolled back
    finally:
        writer.close()
