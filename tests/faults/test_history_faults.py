"""The history file (issue 15): its size cap and age, a restart, SIGKILL in the middle of
writing, and a full disk, which stops only the history while the recorder's callers (the
rules) never wait or fail."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.config.models import History
from edge_agent.history import recorder as recorder_module
from edge_agent.history.recorder import HistoryRecorder
from edge_agent.history.store import FILE_NAME, HistoryStore, Row, _stored, _value
from edge_agent.readings import Quality, Reading, Value
from tests.conftest import REPO_ROOT

S = 1_000_000_000
HOUR = 3600 * S


def rows(sensor: str, start_ns: int, count: int, step_ns: int = S) -> list[Row]:
    return [Row(sensor, start_ns + i * step_ns, float(i), Quality.GOOD) for i in range(count)]


def test_values_of_every_kind_come_back_as_they_went_in(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / FILE_NAME, 24 * HOUR, 10**8)
    now = time.time_ns()
    written = [
        Row("temp", now, 71.25, Quality.GOOD),
        Row("running", now + 1, True, Quality.GOOD),
        Row("mode", now + 2, "AUTO", Quality.UNCERTAIN),
        Row("temp", now + 3, None, Quality.BAD),
        Row("count", now + 4, 7, Quality.GOOD),
    ]
    store.append(written)
    store.close()
    again = HistoryStore(tmp_path / FILE_NAME, 24 * HOUR, 10**8)  # a restart
    back = list(again.rows(now))
    assert [(r.sensor, r.value, r.quality) for r in back] == [
        ("temp", 71.25, Quality.GOOD),
        ("running", True, Quality.GOOD),
        ("mode", "AUTO", Quality.UNCERTAIN),
        ("temp", None, Quality.BAD),
        ("count", 7.0, Quality.GOOD),
    ]
    assert [r.value for r in again.rows(now, sensor="temp")] == [71.25, None]
    assert list(again.rows(now, sensor="nope")) == []


def test_age_and_size_caps_keep_the_newest(tmp_path: Path) -> None:
    now = time.time_ns()
    store = HistoryStore(tmp_path / FILE_NAME, HOUR, 1_000_000)
    store.append(rows("old", now - 2 * HOUR, 10))
    for batch in range(40):  # ~40 x 2,000 rows: well past 1 MB
        store.append(rows("temp", now - HOUR // 2 + batch * 2000 * 1000, 2000, 1000))
    assert store.size_bytes() > 1_000_000
    removed = store.prune(now)
    assert removed > 10
    assert store.size_bytes() <= 1_000_000
    assert list(store.rows(0, sensor="old")) == []  # older than keep
    kept = [r.time_ns for r in store.rows(0, sensor="temp")]
    newest = now - HOUR // 2 + 39 * 2000 * 1000 + 1999 * 1000
    assert kept[-1] == newest and kept == sorted(kept)  # the oldest went, the newest stayed


WRITER = r"""
import sys, time
from pathlib import Path
from edge_agent.history.store import HistoryStore, Row
from edge_agent.readings import Quality
store = HistoryStore(Path(sys.argv[1]), 10**15, 10**10)
batch = 0
while True:
    store.append([Row("temp", batch * 1000 + i, float(batch), Quality.GOOD) for i in range(500)])
    batch += 1
    print(batch, flush=True)
"""


def test_sigkill_while_writing_leaves_whole_batches_and_a_sound_file(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    for _ in range(20):  # a few batches committed, one in flight
        child.stdout.readline()
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = HistoryStore(path, 10**15, 10**10)
    counts: dict[float, int] = {}
    for row in store.rows(0):
        assert isinstance(row.value, float)
        counts[row.value] = counts.get(row.value, 0) + 1
    assert len(counts) >= 20
    assert set(counts.values()) == {500}  # every batch whole, none half
    assert sorted(counts) == [float(b) for b in range(len(counts))]


FULL_DISK = r"""
import asyncio, json, logging, resource, signal, sys
from pathlib import Path
from edge_agent.config.models import History
from edge_agent.history import recorder
from edge_agent.history.recorder import HistoryRecorder
from edge_agent.readings import Quality, Reading

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
recorder.WRITE_INTERVAL_S = 0.01
recorder.RETRY_AFTER_FAILURE_S = 0.05
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))

async def until(predicate):
    for _ in range(2000):  # bounded: 20 s at most
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return False

async def main():
    history = HistoryRecorder(Path(sys.argv[1]), History())
    task = asyncio.create_task(history.run())
    offered = n = 0

    def offer():
        nonlocal offered, n
        n += 1  # the rules' side: never waits, never raises
        history.offer([Reading(f"s{k}", float(n), Quality.GOOD, n) for k in range(20)], n * 10**9)
        offered += 20

    offer()
    first_written = await until(lambda: history.written == 20)
    saw_failed = False
    for _ in range(5000):  # fill the "disk": until a write fails (bounded)
        offer()
        await asyncio.sleep(0.001)
        if history.failed is not None:
            saw_failed = True
            break
    for _ in range(50):  # and go on meanwhile
        offer()
        await asyncio.sleep(0.001)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    print(json.dumps({"offered": offered, "written": history.written,
                      "dropped": history.dropped, "saw_failed": saw_failed,
                      "first_written": first_written}))

asyncio.run(main())
"""


def test_a_full_disk_stops_only_the_history(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tmp_path), str(200_000)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["first_written"] and report["saw_failed"]  # said, and shown by /metrics
    assert report["written"] >= 20 and report["dropped"] > 0
    assert report["written"] + report["dropped"] == report["offered"]  # each one counted
    # Logged once per failure, not once per write: a recovery ("written again") may come
    # between two failures when a batch still fits.
    stopped = result.stderr.count("History stopped")
    assert 1 <= stopped <= 1 + result.stderr.count("History is written again")
    with sqlite3.connect(tmp_path / FILE_NAME) as db:  # what was written is sound
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_on_change_with_a_heartbeat_and_a_bounded_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = HistoryRecorder(tmp_path, History())
    flat = [Reading("temp", 20.0, Quality.GOOD, 0)]
    history.offer(flat, 0)
    history.offer(flat, 10 * S)  # unchanged: not kept
    history.offer([Reading("temp", 20.0 + 1e-12, Quality.GOOD, 0)], 11 * S)  # noise
    history.offer([Reading("temp", 20.5, Quality.GOOD, 0)], 12 * S)
    history.offer([Reading("temp", 20.5, Quality.BAD, 0)], 13 * S)  # quality changed
    history.offer([Reading("temp", 20.5, Quality.BAD, 0)], 73 * S)  # a minute: heartbeat
    assert [(r.time_ns // S, r.value, r.quality) for r in history._buffer] == [
        (0, 20.0, Quality.GOOD),
        (12, 20.5, Quality.GOOD),
        (13, 20.5, Quality.BAD),
        (73, 20.5, Quality.BAD),
    ]
    monkeypatch.setattr(recorder_module, "MAX_BUFFERED", 5)
    history.offer([Reading(f"s{k}", 1.0, Quality.GOOD, 0) for k in range(3)], 80 * S)
    assert (len(history._buffer), history.dropped) == (5, 2)


async def test_the_recorder_writes_and_a_reader_sees_it_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recorder_module, "WRITE_INTERVAL_S", 0.01)
    history = HistoryRecorder(tmp_path, History())
    task = asyncio.create_task(history.run())
    try:
        now = time.time_ns()
        history.offer([Reading("temp", float(n), Quality.GOOD, 0) for n in range(1)], now)
        history.offer([Reading("temp", 2.0, Quality.GOOD, 0)], now + S)
        for _ in range(500):
            if history.written == 2:
                break
            await asyncio.sleep(0.01)
        reader = HistoryStore(tmp_path / FILE_NAME, HOUR, 10**8)
        assert [r.value for r in reader.rows(0, sensor="temp")] == [0.0, 2.0]
        reader.close()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_a_nan_reading_comes_back_as_nan_not_as_no_value(tmp_path: Path) -> None:
    """SQLite keeps a NaN as NULL: replayed as None it would be another reading than the
    rules saw."""

    store = HistoryStore(tmp_path / FILE_NAME, 24 * HOUR, 10**8)
    now = time.time_ns()
    store.append(
        [Row("temp", now, math.nan, Quality.GOOD), Row("temp", now + 1, None, Quality.BAD)]
    )
    back = [r.value for r in store.rows(now, sensor="temp")]
    store.close()
    assert isinstance(back[0], float) and math.isnan(back[0]) and back[1] is None


async def test_a_history_file_deleted_while_the_agent_runs_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone tidies the state folder: the recorder must not go on writing into the deleted
    file, where no reader finds it, until the next restart."""
    monkeypatch.setattr(recorder_module, "WRITE_INTERVAL_S", 0.01)
    history = HistoryRecorder(tmp_path, History())
    task = asyncio.create_task(history.run())

    async def written(count: int) -> None:
        for _ in range(500):
            if history.written >= count:
                return
            await asyncio.sleep(0.01)

    try:
        now = time.time_ns()
        history.offer([Reading("temp", 1.0, Quality.GOOD, 0)], now)
        await written(1)
        for name in (FILE_NAME, f"{FILE_NAME}-wal", f"{FILE_NAME}-shm"):
            (tmp_path / name).unlink(missing_ok=True)
        history.offer([Reading("temp", 2.0, Quality.GOOD, 0)], now + S)
        await written(2)
        history.offer([Reading("temp", 3.0, Quality.GOOD, 0)], now + 2 * S)
        await written(3)
        assert (tmp_path / FILE_NAME).exists()
        reader = HistoryStore(tmp_path / FILE_NAME, HOUR, 10**8)
        assert [r.value for r in reader.rows(0, sensor="temp")] == [2.0, 3.0]
        reader.close()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_a_sensor_stuck_at_nan_is_kept_on_change_like_any_other(tmp_path: Path) -> None:
    """NaN != NaN: without care every poll of a broken transmitter would be a change."""

    history = HistoryRecorder(tmp_path, History())
    for second in range(5):
        history.offer([Reading("temp", math.nan, Quality.GOOD, 0)], second * S)
    history.offer([Reading("temp", 1.0, Quality.GOOD, 0)], 6 * S)
    assert [r.time_ns // S for r in history._buffer] == [0, 6]


async def test_a_corrupt_history_file_is_set_aside_and_a_new_one_begun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a database (a disk error, a copy gone wrong): retrying it every minute would stop
    the history for good; it is kept aside for a look and the history goes on."""
    monkeypatch.setattr(recorder_module, "WRITE_INTERVAL_S", 0.01)
    garbage = b"SQLite format 3\x00" + bytes(range(256)) * 20
    (tmp_path / FILE_NAME).write_bytes(garbage)
    history = HistoryRecorder(tmp_path, History())
    task = asyncio.create_task(history.run())
    try:
        history.offer([Reading("temp", 1.0, Quality.GOOD, 0)], time.time_ns())
        for _ in range(500):
            if history.written:
                break
            await asyncio.sleep(0.01)
        assert history.written == 1 and history.failed is None
        assert (tmp_path / f"{FILE_NAME}.corrupt").read_bytes() == garbage
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_a_reader_names_a_sensor_the_agent_began_after_the_reader_opened(tmp_path: Path) -> None:
    """`replay --recent` reads its passes seconds after it opened the file: a sensor whose
    first row the agent wrote meanwhile is named, not `?`."""
    now = time.time_ns()
    writer = HistoryStore(tmp_path / FILE_NAME, 24 * HOUR, 10**8)
    writer.append([Row("temp", now, 1.0, Quality.GOOD)])
    reader = HistoryStore(tmp_path / FILE_NAME, 0, 0)
    writer.append([Row("flow", now + 1, 2.0, Quality.GOOD)])
    assert [r.sensor for r in reader.rows(now)] == ["temp", "flow"]
    assert [r.value for r in reader.rows(now, sensor="flow")] == [2.0]
    reader.close()
    writer.close()


def test_a_reader_never_writes_the_agents_file(tmp_path: Path) -> None:
    """`edge-agent history` run by an engineer who may read the agent's file but not write
    it: SQLite opens it read-only, where setting a pragma fails. The reader asks for
    read-only itself, so it works the same for root and for them."""
    from edge_agent.history.store import open_for_reading

    now = time.time_ns()
    writer = HistoryStore(tmp_path / FILE_NAME, 24 * HOUR, 10**8)
    writer.append([Row("temp", now, 1.0, Quality.GOOD)])
    reader = open_for_reading(tmp_path)
    writer.append([Row("temp", now + 1, 2.0, Quality.GOOD)])  # the agent goes on
    assert [r.value for r in reader.rows(now)] == [1.0, 2.0]
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader._db.execute("INSERT INTO sensors (name) VALUES ('x')")
    reader.close()
    writer.close()


def test_a_history_that_cannot_be_looked_at_is_not_called_missing(tmp_path: Path) -> None:
    """The agent's state folder is private (0700 under systemd): for another user the file
    cannot even be seen; "no history" would send them to check `history: enabled`. (As root
    no folder is closed, so a path through a file stands for it here.)"""
    from edge_agent.history.store import HistoryError, open_for_reading

    not_a_folder = tmp_path / "state"
    not_a_folder.write_text("")
    with pytest.raises(HistoryError, match=r"cannot look at .*history.sqlite: Not a directory"):
        open_for_reading(not_a_folder)
    with pytest.raises(HistoryError, match="no history in"):
        open_for_reading(tmp_path)


async def test_an_integer_beyond_a_float_is_kept_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An absurd integer (beyond a float's range, as no PLC sends but a wire could carry)
    is recorded as ±inf; it neither stops the history nor ends the agent."""
    monkeypatch.setattr(recorder_module, "WRITE_INTERVAL_S", 0.01)
    history = HistoryRecorder(tmp_path, History())
    task = asyncio.create_task(history.run())
    try:
        now = time.time_ns()
        history.offer([Reading("big", 10**400, Quality.GOOD, 0)], now)
        history.offer([Reading("big", -(10**400), Quality.GOOD, 0)], now + S)
        history.offer([Reading("big", -(10**400) - 1, Quality.GOOD, 0)], now + 2 * S)
        for _ in range(500):  # bounded: 5 s at most
            if history.written == 3 or task.done():
                break
            await asyncio.sleep(0.01)
        assert not task.done() and history.failed is None
        reader = HistoryStore(tmp_path / FILE_NAME, HOUR, 10**8)
        assert [r.value for r in reader.rows(0, sensor="big")] == [
            float("inf"),
            float("-inf"),
            float("-inf"),
        ]
        reader.close()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


_VALUES = st.one_of(
    st.floats(),  # NaN and ±inf included
    st.integers(min_value=-(2**80), max_value=2**80),  # beyond a float's range too
    st.booleans(),
    st.none(),
    st.text(max_size=300),  # past MAX_TEXT_CHARS
)


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(
        st.lists(
            st.tuples(st.sampled_from(["a", "b", "c", "d"]), _VALUES, st.sampled_from(Quality)),
            max_size=20,
        ),
        max_size=4,
    )
)
def test_batches_of_any_values_come_back_as_each_value_would_alone(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[tuple[str, Value, Quality]]]
) -> None:
    """One INSERT for a batch (sensors named in it for the first time included) stores each
    row as ``_stored`` says, in order."""
    path = tmp_path_factory.mktemp("history") / FILE_NAME
    store = HistoryStore(path, 24 * HOUR, 10**9)
    written: list[Row] = []
    at = time.time_ns()
    for batch in batches:
        rows_of_batch = [Row(s, at + i, v, q) for i, (s, v, q) in enumerate(batch, len(written))]
        store.append(rows_of_batch)
        written += rows_of_batch
    back = list(store.rows(at))
    store.close()
    assert [(r.sensor, r.time_ns, r.quality) for r in back] == [
        (r.sensor, r.time_ns, r.quality) for r in written
    ]
    for row, read in zip(written, back, strict=True):
        expected = _value(*_stored(row.value))
        if isinstance(expected, float) and math.isnan(expected):
            assert isinstance(read.value, float) and math.isnan(read.value)
        else:
            assert read.value == expected and type(read.value) is type(expected)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.one_of(st.floats(), st.integers(), st.booleans(), st.none()), max_size=30),
    steps=st.lists(st.integers(min_value=0, max_value=40 * S), min_size=30, max_size=30),
    qualities=st.lists(st.sampled_from(Quality), min_size=30, max_size=30),
)
def test_the_recorder_keeps_exactly_what_changed_says(
    tmp_path_factory: pytest.TempPathFactory,
    values: list[Value],
    steps: list[int],
    qualities: list[Quality],
) -> None:
    """The recorder's inline fast paths keep the same readings as ``_changed`` alone."""
    history = HistoryRecorder(tmp_path_factory.mktemp("history"), History())
    expected: list[tuple[int, Value, Quality]] = []
    last: tuple[Value, Quality, int] | None = None
    at = 0
    for value, step, quality in zip(values, steps, qualities, strict=False):
        at += step
        reading = Reading("temp", value, quality, 0)
        if last is None or recorder_module._changed(last, reading, at):
            last = (value, quality, at)
            expected.append((at, value, quality))
        history.offer([reading], at)
    kept = [(r.time_ns, r.value, r.quality) for r in history._buffer]
    assert len(kept) == len(expected)
    for (t, v, q), (et, ev, eq) in zip(kept, expected, strict=True):
        assert (t, q) == (et, eq) and (v is ev or v == ev)
