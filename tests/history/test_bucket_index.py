"""Per-sensor reads through the (t / BUCKET_NS, sensor) index (issue 16, §4d): the same rows,
in the same order, as the old query over (sensor, t); and the index is the one used."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge_agent.history.store import _ONE_SENSOR, BUCKET_NS, FILE_NAME, HistoryStore, Row
from edge_agent.readings import Quality

OLD_QUERY = (
    "SELECT sensor, t, k, v, s, q FROM readings WHERE sensor = ? AND t >= ? AND t <= ? "
    "ORDER BY t, rowid"
)
SENSORS = ("a", "b", "c")
# Times around bucket edges (on both sides of zero: t / BUCKET_NS truncates toward zero).
times = st.builds(
    lambda bucket, offset: bucket * BUCKET_NS + offset,
    st.integers(-3, 3),
    st.sampled_from([-1, 0, 1, BUCKET_NS // 2, BUCKET_NS - 1]),
)
bounds = st.one_of(times, st.integers(-(2**62), 2**62))
written = st.lists(
    st.tuples(st.sampled_from(SENSORS), times, st.floats(allow_nan=False)), max_size=40
)
queries = st.lists(
    st.tuples(st.sampled_from((*SENSORS, "absent")), bounds, st.none() | bounds),
    min_size=1,
    max_size=5,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(written, queries)
@example([("a", BUCKET_NS - 1, 1.0), ("a", BUCKET_NS, 2.0)], [("a", BUCKET_NS - 1, BUCKET_NS)])
@example([("a", -1, 1.0), ("a", 0, 2.0), ("a", 1, 3.0)], [("a", -1, 1)])
def test_a_sensor_reads_exactly_what_the_old_query_read(
    rows: list[tuple[str, int, float]], asked: list[tuple[str, int, int | None]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = HistoryStore(Path(folder) / FILE_NAME, 10**18, 10**12)
        try:
            for start in range(0, len(rows), 7):  # several batches, times not in order
                store.append([Row(n, t, v, Quality.GOOD) for n, t, v in rows[start : start + 7]])
            ids = {name: number for number, name in store._db.execute("SELECT * FROM sensors")}
            for sensor, since, until in asked:
                got = [(r.time_ns, r.value) for r in store.rows(since, until, sensor=sensor)]
                if sensor not in ids:
                    assert got == []
                    continue
                top = until if until is not None else 2**63 - 1
                old = [
                    (t, v)
                    for _, t, _, v, _, _ in store._db.execute(OLD_QUERY, (ids[sensor], since, top))
                ]
                assert got == old
        finally:
            store.close()


def test_the_per_sensor_read_seeks_the_bucket_index(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / FILE_NAME, 10**18, 10**12)
    store.append([Row(f"s{i}", i * BUCKET_NS, 1.0, Quality.GOOD) for i in range(50)])
    plan = [
        row[3] for row in store._db.execute(f"EXPLAIN QUERY PLAN {_ONE_SENSOR}", (1, 0, 2**63 - 1))
    ]
    assert any("USING INDEX readings_by_bucket (<expr>=? AND sensor=?)" in step for step in plan)
    names = {row[1] for row in store._db.execute("SELECT type, name FROM sqlite_master")}
    assert "readings_by_sensor" not in names and "readings_by_time" in names
    store.close()


def test_an_empty_file_and_an_unbounded_read_end(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / FILE_NAME, 10**18, 10**12)
    store.append([Row("a", 5, 1.0, Quality.GOOD)])
    store._db.execute("DELETE FROM readings")  # the sensor is named, its rows are gone
    assert list(store.rows(-(2**63), sensor="a")) == []
    store.append([Row("a", 2**62, 2.0, Quality.GOOD)])
    assert [r.value for r in store.rows(-(2**63), sensor="a")] == [2.0]
    store.close()
    assert sqlite3.connect(tmp_path / FILE_NAME).execute("PRAGMA integrity_check").fetchone() == (
        "ok",
    )
