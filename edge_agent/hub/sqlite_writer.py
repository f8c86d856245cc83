"""The hub's SQLite writer: one connection, one thread, and group commit. Every operation
of the store runs on this thread; the operations that arrived together commit in one
transaction (one fsync), each inside its own savepoint so that one failure stays with its
caller. A thread that dies fails every waiting caller at once and marks the store failed.

The event loop's calls made in one pass of the loop (the alerts of one burst from the
broker) reach the thread as one queued operation and come back with one wake-up of the
loop: per call, a hand-off each way cost more than its query (issue 16).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Final

from edge_agent.hub.store import StoreError, StoreRejected

log = logging.getLogger("edge_agent.hub.store_sqlite")  # the name its lines always had

Op = Callable[[sqlite3.Connection], Any]
"""One operation: runs on the writer's connection, inside the batch's transaction."""


class SqliteWriter:
    """One connection, one thread; operations queued together commit together."""

    def __init__(self, path: Path, prepare: Op) -> None:
        """Open ``path`` and run ``prepare`` on it (its checks, settings and tables) before
        the thread starts; a failure there closes the file and propagates."""
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            prepare(self._db)
        except BaseException:
            self._db.close()
            raise
        self._cond = threading.Condition()
        self._queue: list[tuple[Op, concurrent.futures.Future[Any]]] = []
        self._closed = False
        self.failure: str | None = None
        # Each loop's calls of its current pass, sent together (see call). By loop: a loop
        # that stopped before sending its own must not hold back another's.
        self._gathered: dict[asyncio.AbstractEventLoop, list[tuple[Op, asyncio.Future[Any]]]] = {}
        self._thread = threading.Thread(target=self._loop, name="hub-sqlite-writer", daemon=True)
        self._thread.start()

    def run(self, op: Op) -> Any:
        """Run ``op`` in the next transaction and wait until it is committed."""
        return self.submit(op).result()

    def submit(self, op: Op) -> concurrent.futures.Future[Any]:
        """Queue ``op`` for the next transaction; the future resolves once it is committed
        (an event loop awaits it with ``asyncio.wrap_future``: no helper thread between)."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._cond:
            if self.failure is not None:
                raise StoreError(f"the hub store's writer died: {self.failure}")
            if self._closed:
                raise StoreError("the hub store is closed")
            self._queue.append((op, future))
            self._cond.notify()
        return future

    async def call(self, op: Op) -> Any:
        """:meth:`run` for the event loop; resolves once ``op`` is committed. The calls made
        in one pass of the loop go to the thread as one operation (each still in its own
        savepoint: one failure stays with its caller) and come back with one wake-up.
        Shielded: a cancelled caller leaves its operation queued; it runs either way."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        gathered = self._gathered.get(loop)
        if gathered is None:
            gathered = self._gathered[loop] = []
            loop.call_soon(self._send_gathered, loop)  # after the rest of this pass
        gathered.append((op, future))
        return await asyncio.shield(future)

    def _send_gathered(self, loop: asyncio.AbstractEventLoop) -> None:
        gathered = self._gathered.pop(loop)
        try:
            done = self.submit(partial(_run_each, [op for op, _ in gathered]))
        except StoreError as exc:
            _settle(gathered, exc)
            return

        def wake(_: concurrent.futures.Future[Any]) -> None:  # on the writer's thread
            try:
                loop.call_soon_threadsafe(_deliver, gathered, done)
            except RuntimeError:
                # The loop is closed: nobody is left to await these calls.
                log.warning("Hub store results for a closed event loop dropped.")

        done.add_done_callback(wake)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        # Bounded: the hub must stop within 10 s of SIGTERM even with a stuck disk.
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._db.close()

    def _loop(self) -> None:
        batch: list[tuple[Op, concurrent.futures.Future[Any]]] = []
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closed:
                        self._cond.wait()
                    batch, self._queue = self._queue, []
                    if not batch and self._closed:
                        return
                self._run_batch(batch)
                batch = []
        except BaseException as exc:
            # Whatever ends this thread ends the store: every waiting caller is told now
            # (none may wait forever) and the hub sees failure and stops for its supervisor.
            with self._cond:
                self.failure = f"{type(exc).__name__}: {exc}"
                batch, self._queue = batch + self._queue, []
            log.critical("Hub store writer died.", extra={"error": self.failure}, exc_info=exc)
            error = StoreError(f"the hub store's writer died: {self.failure}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)

    def _run_batch(self, batch: list[tuple[Op, concurrent.futures.Future[Any]]]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for op, _ in batch:
                self._db.execute("SAVEPOINT op")
                try:
                    outcomes.append((True, op(self._db)))
                    self._db.execute("RELEASE op")
                except Exception as exc:
                    # One operation's failure stays with its caller; the batch commits.
                    self._db.execute("ROLLBACK TO op")
                    self._db.execute("RELEASE op")
                    outcomes.append((False, _translate(exc)))
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            error = StoreError(f"hub store commit failed: {exc}")
            for _, future in batch:
                future.set_exception(error)
            return
        for (ok, value), (_, future) in zip(outcomes, batch, strict=True):
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


def _run_each(ops: list[Op], db: sqlite3.Connection) -> list[tuple[bool, Any]]:
    """The loop's gathered calls inside the writer's batch, each in a savepoint of its own:
    one call's failure is rolled back and handed to that call alone."""
    outcomes: list[tuple[bool, Any]] = []
    for op in ops:
        db.execute("SAVEPOINT call")
        try:
            outcomes.append((True, op(db)))
            db.execute("RELEASE call")
        except Exception as exc:
            db.execute("ROLLBACK TO call")
            db.execute("RELEASE call")
            outcomes.append((False, _translate(exc)))
    return outcomes


def _deliver(
    gathered: list[tuple[Op, asyncio.Future[Any]]], done: concurrent.futures.Future[Any]
) -> None:
    """On the loop: each gathered call gets its own outcome, or all the batch's failure."""
    error = done.exception()
    if error is not None:
        _settle(gathered, error)
        return
    outcomes: list[tuple[bool, Any]] = done.result()
    for (ok, value), (_, future) in zip(outcomes, gathered, strict=True):
        if future.done():  # never, as call shields it; a resolved future must stay so
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _settle(gathered: list[tuple[Op, asyncio.Future[Any]]], error: BaseException) -> None:
    for _, future in gathered:
        if not future.done():
            future.set_exception(error)


VALUES_REFUSED: Final = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.ProgrammingError,
    sqlite3.InterfaceError,
    sqlite3.NotSupportedError,
    OverflowError,
    TypeError,
    ValueError,
)
"""Errors about what was asked, not about the database (as ``pg_pool`` reads PostgreSQL's):
a constraint, a value too big or out of range, a value SQLite cannot bind or encode."""


def _translate(exc: Exception) -> Exception:
    """An operation's error as the hub reads it. Values refused (``VALUES_REFUSED``) never
    fit: a poison message. The database failing (busy, locked, I/O, full, a malformed page,
    out of memory: any other SQLite error, and ``MemoryError``, which is how SQLITE_NOMEM
    reaches Python) may recover and must not cost the alert: retried. Anything else is a
    bug in the operation, handed on as it is to the caller's path for surprises (as
    ``pg_pool`` does), not read as the values' fault."""
    if isinstance(exc, VALUES_REFUSED):
        error: StoreError = StoreRejected(
            f"hub store refused the values: {type(exc).__name__}: {exc}"
        )
    elif isinstance(exc, sqlite3.Error | MemoryError):
        error = StoreError(f"hub store: {type(exc).__name__}: {exc}")
    else:
        return exc
    error.__cause__ = exc
    return error
