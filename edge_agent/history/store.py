"""Recent readings on disk: one SQLite file, pruned by age and by size.

Rows are small (a sensor number, a time, a number or a short text, a quality); sensors are
named once in their own table. Every append is one transaction, so a power cut or SIGKILL
loses at most the batch in hand, never the file. Readers (``edge-agent history``,
``replay --recent``) open the same file while the agent writes it (WAL).
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final, NamedTuple

from edge_agent.common.sqlite_wal import JOURNAL_SIZE_LIMIT, truncate_wal, wal_bytes
from edge_agent.errors import EdgeAgentError
from edge_agent.readings import Quality, Reading, Value

FILE_NAME: Final = "history.sqlite"
MAX_TEXT_CHARS: Final = 256
PRUNE_SHARE: Final = 0.1
"""Past the size cap, the oldest tenth of the rows goes at once (not one row per append)."""
QUALITY_CODES: Final = {Quality.GOOD: 0, Quality.UNCERTAIN: 1, Quality.BAD: 2}
QUALITY_OF: Final = {code: quality for quality, code in QUALITY_CODES.items()}
NONE, NUMBER, BOOLEAN, TEXT = 0, 1, 2, 3  # the kinds of value in column k
BUCKET_NS: Final = 10 * 1_000_000_000
"""Per-sensor reads go through an index on (t / BUCKET_NS, sensor), which grows at its end:
a second's batch lands on a few pages there, where a (sensor, t) index put it on one page a
sensor (5x the CPU once the file was minutes old, docs/performance.md section 4d). 10 s:
60 s wrote more pages a batch, 1 s made a day's read of one sensor seek 86,400 times."""
BUCKET: Final = f"t / {BUCKET_NS}"  # queries must spell it as the index does to use it
# One transaction: a cut during the change from the old (sensor, t) index leaves either.
_SCHEMA: Final = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS sensors (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS readings (
    sensor INTEGER NOT NULL, t INTEGER NOT NULL, k INTEGER NOT NULL, v REAL, s TEXT,
    q INTEGER NOT NULL
);
DROP INDEX IF EXISTS readings_by_sensor;
CREATE INDEX IF NOT EXISTS readings_by_bucket ON readings ({BUCKET}, sensor);
CREATE INDEX IF NOT EXISTS readings_by_time ON readings (t);
COMMIT;
"""
_ALL_SENSORS: Final = (
    "SELECT sensor, t, k, v, s, q FROM readings WHERE t >= ? AND t <= ? ORDER BY t, rowid"
)
_ONE_SENSOR: Final = f"""
WITH RECURSIVE buckets(n) AS (
    SELECT max(?2, (SELECT min(t) FROM readings)) / {BUCKET_NS}
    UNION ALL
    SELECT n + 1 FROM buckets WHERE n < min(?3, (SELECT max(t) FROM readings)) / {BUCKET_NS}
)
SELECT sensor, t, k, v, s, q FROM readings
WHERE {BUCKET} IN buckets AND sensor = ?1 AND t >= ?2 AND t <= ?3 ORDER BY t, rowid
"""  # noqa: S608 (constants only)
"""One seek a bucket (a range on the bucket would scan every sensor's rows in it); the
buckets run between the file's first and last rows, not to the end of time. t / BUCKET_NS
never decreases as t grows, so every row in [since, until] has its bucket in the list. On a
file of before (read beside an older agent), SQLite takes its (sensor, t) index instead."""


class HistoryError(EdgeAgentError):
    """The history file cannot be opened, read or written (the rules never see it)."""


class HistoryCorrupt(HistoryError):
    """The file is not a database (not locked, read-only or full: no retry mends it)."""


class Row(NamedTuple):
    """One reading as the history keeps it (a tuple: the recorder makes thousands a second)."""

    sensor: str
    time_ns: int  # wall clock when the agent received the reading
    value: Value
    quality: Quality


class HistoryStore:
    """Not thread-safe: the agent's one writer thread, or one reader."""

    def __init__(
        self, path: Path, keep_ns: int, max_bytes: int, *, read_only: bool = False
    ) -> None:
        self.path = path
        self.keep_ns = keep_ns
        self.max_bytes = max_bytes
        try:
            if read_only:  # beside the agent, perhaps as a user who may only read its file
                self._db = sqlite3.connect(
                    f"{path.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None
                )
                self._ids: dict[str, int] = {}
                self._load_ids()
                return
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            # Before the first table: deleted rows give their pages back to the file system.
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # history: a cut loses a second
            self._db.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
            try:
                self._db.executescript(_SCHEMA)
            except sqlite3.Error:  # not left half-done for this connection's next statement
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            self._ids = {}
            self._load_ids()
        except sqlite3.Error as exc:
            # OperationalError and the others are conditions; the base class is a bad file.
            bad_file = type(exc) is sqlite3.DatabaseError
            raise (HistoryCorrupt if bad_file else HistoryError)(f"{path}: {exc}") from exc

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    # ------------------------------------------------------------------ writing

    def append(self, rows: Sequence[Row]) -> None:
        """One transaction and one prepared INSERT for the batch (row by row, ``execute``
        was a quarter of the agent's CPU at 10,000 subscribed items)."""
        try:
            with self._transaction():
                ids, new_id, codes = self._ids, self._id, QUALITY_CODES
                values: list[tuple[int, int, int, float | None, str | None, int]] = []
                for name, time_ns, value, quality in rows:
                    sensor = ids.get(name)
                    if sensor is None:  # named in the same transaction as its first row
                        sensor = new_id(name)
                    if type(value) is float:  # the common case, inline
                        values.append((sensor, time_ns, NUMBER, value, None, codes[quality]))
                    else:
                        kind, number, text = _stored(value)
                        values.append((sensor, time_ns, kind, number, text, codes[quality]))
                self._db.executemany(
                    "INSERT INTO readings (sensor, t, k, v, s, q) VALUES (?, ?, ?, ?, ?, ?)",
                    values,
                )
        except sqlite3.Error as exc:
            raise HistoryError(f"history write failed: {exc}") from exc

    def prune(self, now_ns: int) -> int:
        """Rows older than ``keep`` go; past ``max_bytes`` the oldest tenth goes too (again
        while still past it, bounded). Returns how many rows went."""
        removed = 0
        try:
            removed += self._db.execute(
                "DELETE FROM readings WHERE t < ?", (now_ns - self.keep_ns,)
            ).rowcount
            truncate_wal(self._db)
            for _ in range(5):  # bounded: each round cuts what the overshoot says
                size = self.size_bytes()
                if size <= self.max_bytes:
                    break
                (count,) = self._db.execute("SELECT count(*) FROM readings").fetchone()
                if not count:
                    break
                share = max(PRUNE_SHARE, 1 - (1 - PRUNE_SHARE) * self.max_bytes / size)
                removed += self._db.execute(
                    "DELETE FROM readings WHERE rowid IN "
                    "(SELECT rowid FROM readings ORDER BY t LIMIT ?)",
                    (max(1, math.ceil(count * share)),),
                ).rowcount
                # As a script: execute() steps this pragma once, which frees one page.
                self._db.executescript("PRAGMA incremental_vacuum;")
                truncate_wal(self._db)
        except sqlite3.Error as exc:
            raise HistoryError(f"history prune failed: {exc}") from exc
        return removed

    def size_bytes(self) -> int:
        try:
            return self.path.stat().st_size + wal_bytes(self.path)
        except OSError:
            return 0

    # ------------------------------------------------------------------ reading

    def sensors(self) -> list[str]:
        return sorted(self._ids)

    def rows(
        self, since_ns: int, until_ns: int | None = None, sensor: str | None = None
    ) -> Iterator[Row]:
        """Rows in time order (one sensor, or all)."""
        until = until_ns if until_ns is not None else 2**63 - 1
        try:  # a reader beside the agent: sensors it began since
            self._load_ids()
        except sqlite3.Error as exc:
            raise HistoryError(f"history read failed: {exc}") from exc
        names = {number: name for name, number in self._ids.items()}
        if sensor is not None:
            if sensor not in self._ids:
                return
            args: tuple[int, ...] = (self._ids[sensor], since_ns, until)
        else:
            args = (since_ns, until)
        try:
            query = _ALL_SENSORS if sensor is None else _ONE_SENSOR
            for number, t, kind, v, text, q in self._db.execute(query, args):
                yield Row(
                    names.get(number, "?"), t, _value(kind, v, text), QUALITY_OF.get(q, Quality.BAD)
                )
        except sqlite3.Error as exc:
            raise HistoryError(f"history read failed: {exc}") from exc

    # ------------------------------------------------------------------ inside

    def _load_ids(self) -> None:
        self._ids = {
            name: number for number, name in self._db.execute("SELECT id, name FROM sensors")
        }

    def _id(self, name: str) -> int:
        number = self._ids.get(name)
        if number is None:
            cursor = self._db.execute("INSERT INTO sensors (name) VALUES (?)", (name,))
            assert cursor.lastrowid is not None
            number = self._ids[name] = cursor.lastrowid
        return number

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _stored(value: Value) -> tuple[int, float | None, str | None]:
    """(kind, number, text) of a value; text cut to :data:`MAX_TEXT_CHARS`."""
    if isinstance(value, bool):
        return BOOLEAN, float(value), None
    if isinstance(value, float):
        return NUMBER, value, None
    if isinstance(value, int):
        # The column holds a float: an integer beyond its range is kept as ±inf rather
        # than stopping the history (float() raises OverflowError on it).
        return NUMBER, _as_float(value), None
    if value is None:
        return NONE, None, None
    return TEXT, None, str(value)[:MAX_TEXT_CHARS]


def _as_float(value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _value(kind: int, number: float | None, text: str | None) -> Value:
    if kind == BOOLEAN:
        return bool(number)
    if kind == NUMBER:
        return math.nan if number is None else number  # SQLite keeps a NaN as NULL
    if kind == TEXT:
        return text
    return None


def as_reading(row: Row) -> Reading:
    """A history row as the reading a trace would hold: the rules run on its time."""
    return Reading(
        sensor_id=row.sensor,
        value=row.value,
        quality=row.quality,
        source_time_ns=row.time_ns,
        reason=None if row.quality is Quality.GOOD else "recorded as not good",
    )


def open_for_reading(state_dir: Path) -> HistoryStore:
    """The history of the agent of ``state_dir``, read beside it (WAL); HistoryError when
    there is none."""
    path = state_dir / FILE_NAME
    try:
        path.stat()
    except FileNotFoundError:
        raise HistoryError(
            f"no history in {state_dir} (`history: enabled` and a running agent keep it)"
        ) from None
    except OSError as exc:  # e.g. the agent's private state folder: not "no history"
        raise HistoryError(
            f"cannot look at {path}: {exc.strerror} (the agent's state folder may be its "
            "own: run this as the agent's user, e.g. sudo -u edge-agent)"
        ) from None
    return HistoryStore(path, keep_ns=0, max_bytes=0, read_only=True)
