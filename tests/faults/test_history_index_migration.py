"""A history file of before the bucket index (issue 16, §4d): the agent's writer replaces
its (sensor, t) index in one transaction, a reader of the old file still reads it, and a cut
during the change (SIGKILL, or a statement that fails half-way) leaves a sound file."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from edge_agent.history.store import _ONE_SENSOR, FILE_NAME, HistoryError, HistoryStore, Row
from edge_agent.readings import Quality
from tests.conftest import REPO_ROOT

S = 1_000_000_000
OLD_SCHEMA = """
CREATE TABLE sensors (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE readings (
    sensor INTEGER NOT NULL, t INTEGER NOT NULL, k INTEGER NOT NULL, v REAL, s TEXT,
    q INTEGER NOT NULL
);
CREATE INDEX readings_by_sensor ON readings (sensor, t);
CREATE INDEX readings_by_time ON readings (t);
"""
NAMES = ("temp", "flow", "level")


def old_file(path: Path, per_sensor: int = 30) -> None:
    """A file as the store wrote it before the bucket index (its DDL, its pragmas)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA auto_vacuum=INCREMENTAL")
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(OLD_SCHEMA)
    db.executemany("INSERT INTO sensors (id, name) VALUES (?, ?)", enumerate(NAMES, 1))
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO readings VALUES (?, ?, 1, ?, NULL, 0)",
        (
            (sensor, i * 3 * S + sensor, float(i))  # 3 s apart: several a bucket, many buckets
            for i in range(per_sensor)
            for sensor in range(1, len(NAMES) + 1)
        ),
    )
    db.execute("COMMIT")
    db.close()


def indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL"
            )
        }


def everything(store: HistoryStore) -> dict[str, list[Row]]:
    """Every sensor's reads a tool would make: all, a window, an open end."""
    seen: dict[str, list[Row]] = {"*": list(store.rows(0))}
    for name in NAMES:
        seen[name] = list(store.rows(0, sensor=name))
        seen[f"{name} window"] = list(store.rows(10 * S, 40 * S, sensor=name))
    return seen


def test_a_reader_reads_an_old_file_and_the_writer_migrates_it(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    old_file(path)
    reader = HistoryStore(path, 0, 0, read_only=True)
    before = everything(reader)
    assert len(before["temp"]) == 30 and len(before["temp window"]) == 10
    assert indexes(path) == {"readings_by_sensor", "readings_by_time"}  # a reader changes nothing
    plan = reader._db.execute(f"EXPLAIN QUERY PLAN {_ONE_SENSOR}", (1, 0, 9))
    assert any(
        "INDEX readings_by_sensor" in step[3] for step in plan
    )  # the same query, on the old index
    writer = HistoryStore(path, 10**18, 10**12)
    assert indexes(path) == {"readings_by_bucket", "readings_by_time"}
    assert everything(writer) == before
    assert everything(reader) == before  # the reader opened before the change reads on
    plan = reader._db.execute(f"EXPLAIN QUERY PLAN {_ONE_SENSOR}", (1, 0, 9))
    assert any("INDEX readings_by_bucket" in step[3] for step in plan)  # now the new one
    writer.close()
    again = HistoryStore(path, 10**18, 10**12)  # opened twice: nothing more to do
    assert everything(again) == before
    again.append([Row("temp", 100 * S, 9.0, Quality.GOOD)])
    assert [r.value for r in again.rows(99 * S, sensor="temp")] == [9.0]
    again.close()
    reader.close()


def test_a_failure_half_way_through_the_change_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    old_file(path)
    with sqlite3.connect(path) as db:  # the new index's name taken: its CREATE fails
        db.execute("CREATE TABLE readings_by_bucket (x)")
    try:
        HistoryStore(path, 10**18, 10**12)
    except HistoryError:
        pass
    else:
        raise AssertionError("the blocked index went unnoticed")
    assert "readings_by_sensor" in indexes(path)  # its DROP undone with the failed CREATE
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE readings_by_bucket")
    store = HistoryStore(path, 10**18, 10**12)
    assert "readings_by_bucket" in indexes(path) and "readings_by_sensor" not in indexes(path)
    assert len(list(store.rows(0, sensor="flow"))) == 30
    store.close()


OPENER = r"""
import sys
from pathlib import Path
from edge_agent.history.store import HistoryStore
print("opening", flush=True)
HistoryStore(Path(sys.argv[1]), 10**18, 10**12)
print("open", flush=True)
"""


def test_sigkill_during_the_change_leaves_a_sound_file(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    old_file(path, per_sensor=100_000)  # 300,000 rows: the CREATE INDEX takes a while
    with sqlite3.connect(path) as db:
        expected = db.execute("SELECT count(*), sum(v) FROM readings WHERE sensor = 2").fetchone()
    cut_during = 0
    for delay in (0.0, 0.05, 0.1, 0.2, 0.4):
        child = subprocess.Popen(
            [sys.executable, "-c", OPENER, str(path)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        child.stdout.readline()  # importing done: the open and its change begin
        time.sleep(delay)  # test-side only: where in the change the cut lands
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        left = indexes(path)
        assert ("readings_by_sensor" in left) != ("readings_by_bucket" in left)  # one, whole
        cut_during += "readings_by_sensor" in left
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        if "readings_by_sensor" in left:
            break
    store = HistoryStore(path, 10**18, 10**12)
    rows = list(store.rows(0, sensor="flow"))
    assert (len(rows), sum(r.value for r in rows if isinstance(r.value, float))) == expected
    assert "readings_by_bucket" in indexes(path)
    store.close()
    assert cut_during, "no cut landed before the change was done (the file was too small)"
