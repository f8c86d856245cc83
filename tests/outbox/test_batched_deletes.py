"""``ack`` and ``confirm_awaiting`` delete their rows with one statement per 500 keys
instead of a SELECT and a DELETE per key (issue 16), with the same effects: exactly the
rows named go, unknown and repeated ids are ignored, the byte total and the counts stay
true, an expired row (a tampered ``expire_time``) counts as gone and stays, as
``Cache.delete`` treats it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.outbox import Outbox
from edge_agent.outbox.records import DELETE_CHUNK


@pytest.fixture
def deletes(outbox: Outbox) -> Iterator[list[str]]:
    """Every DELETE statement the outbox's connection (this thread's) runs; Python reports
    the statement again for each step of a trigger it fires: count the distinct ones."""
    statements: list[str] = []
    connection = outbox._cache._con
    connection.set_trace_callback(
        lambda sql: statements.append(sql) if sql.lstrip().upper().startswith("DELETE") else None
    )
    yield statements
    connection.set_trace_callback(None)


def recounted(outbox: Outbox) -> int:
    row = outbox._cache._sql("SELECT COALESCE(SUM(size), 0) FROM Cache").fetchone()
    return int(row[0])


def test_an_ack_of_a_window_is_one_statement(outbox: Outbox, deletes: list[str]) -> None:
    ids = outbox.put_many([{"n": n} for n in range(150)])
    items = outbox.lease(100)
    deletes.clear()
    outbox.ack([i.id for i in items])
    assert len(set(deletes)) == 1
    assert [i.id for i in outbox.peek(100)] == ids[100:]
    assert outbox.stats().depth == 50
    assert outbox.stats().bytes == recounted(outbox)


def test_an_ack_deletes_exactly_the_named_rows(outbox: Outbox, deletes: list[str]) -> None:
    count = DELETE_CHUNK * 4 + 7
    ids = outbox.put_many([{"n": n} for n in range(count)])
    gone = ids[::2]
    deletes.clear()
    # Unknown ids, repeated ids and ids of other kinds of rows are ignored.
    named = [*gone, 10**12, gone[0], gone[1]]
    outbox.ack(named)
    assert len(set(deletes)) == -(-len(named) // DELETE_CHUNK) == 3  # 500 keys a statement
    assert [i.id for i in outbox.peek(count)] == ids[1::2]
    stats = outbox.stats()
    assert stats.depth == len(ids[1::2]) and stats.bytes == recounted(outbox)
    outbox.ack([])
    assert outbox.stats().depth == len(ids[1::2])


def test_confirm_awaiting_removes_and_counts_only_awaiting_rows(
    outbox: Outbox, deletes: list[str]
) -> None:
    ids = outbox.put_many([{"n": n} for n in range(5)])
    outbox.lease(5)
    assert outbox.mark_awaiting(ids[:3]) == 3
    deletes.clear()
    assert outbox.confirm_awaiting([ids[0], ids[1], ids[1], ids[4], 10**12]) == 2
    assert len(set(deletes)) == 1
    assert [a.id for a in outbox.awaiting()] == [ids[2]]
    assert [i.id for i in outbox.peek(5)] == [ids[3], ids[4]]  # a queue row is not awaiting
    assert outbox.stats().bytes == recounted(outbox)


def test_an_expired_row_is_left_as_cache_delete_leaves_it(tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    with Outbox.open(directory, 1_000_000) as outbox:
        first, second = outbox.put_many([{"n": 1}, {"n": 2}])
    with sqlite3.connect(directory / "cache.db") as db:
        db.execute("UPDATE Cache SET expire_time = 1.0 WHERE key = ?", (second,))
    with Outbox.open(directory, 1_000_000) as outbox:
        outbox.ack([first, second])
        # diskcache's own delete would not have found it either: the row is still there.
        rows = outbox._cache._sql("SELECT key FROM Cache WHERE key < ''").fetchall()
        assert rows == [(second,)]
