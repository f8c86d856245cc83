"""``recover``: copy every readable event of set-aside damaged outboxes into the live one.

A set-aside outbox (:mod:`.aside`) is read with the standard ``sqlite3`` module, read-only,
row by row, so one damaged page costs the rows on it and not the rest. A value is decoded
only if it is a plain JSON row (:func:`.jsondisk.decode_row`: never unpickled). Queue rows
go to the end of the live queue in their old order (new ids; the payloads, and so the
event ids downstream deduplicates on, are unchanged); dead letters stay dead letters.
What cannot be read is reported, and stays in the set-aside copy, which is never deleted.

Safe with the agent running: the live outbox is written through SQLite transactions (one
writer at a time, the same id counter), in batches that each record how far the salvage
got, so an interrupted ``recover`` resumes without importing anything twice. Two
``recover`` at once: the second waits for nothing and says so (a lock file per copy).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from edge_agent.outbox.aside import DAMAGE_NOTE, RECOVERED_NOTE, awaiting_recovery, write_note
from edge_agent.outbox.errors import OutboxError
from edge_agent.outbox.integrity import DB_NAME, decode_text
from edge_agent.outbox.jsondisk import UnsafeRowError, decode_row
from edge_agent.outbox.records import DEAD_PREFIX, is_queue_record
from edge_agent.outbox.store import Outbox

BATCH_ROWS: Final = 500
"""Rows per transaction in the live outbox: short enough not to hold up the agent's puts."""
_LOCK_NAME: Final = "recover.lock"


class RecoverBusy(OutboxError):
    """Another ``recover`` is working on the same set-aside outbox."""


@dataclass
class SalvageReport:
    """What one set-aside outbox gave back."""

    source: str
    queued: int = 0
    dead: int = 0
    already_imported: int = 0
    unreadable: list[str] = field(default_factory=list)
    damage: str | None = None


@dataclass
class _Rows:
    queued: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    dead: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def recover(outbox: Outbox) -> list[SalvageReport]:
    """Salvage every set-aside copy of ``outbox.directory`` that awaits recovery into
    ``outbox``, oldest copy first, then mark each recovered (``RECOVERED.json``)."""
    reports = []
    for source in awaiting_recovery(outbox.directory):
        with _exclusive(source / _LOCK_NAME):
            if (source / RECOVERED_NOTE).exists():
                continue  # finished by another recover while this one waited
            report = _salvage(outbox, source)
            document = asdict(report) | {"recovered_at": time.time()}
            write_note(source / RECOVERED_NOTE, document)
            reports.append(report)
    return reports


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    descriptor = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RecoverBusy(f"another recover is working on {lock_path.parent.name}") from exc
        yield
    finally:
        os.close(descriptor)  # also releases the lock


def _salvage(outbox: Outbox, source: Path) -> SalvageReport:
    report = SalvageReport(source=source.name, damage=_damage_note(source))
    rows = read_rows(source / DB_NAME)
    report.unreadable = rows.unreadable
    progress = outbox.salvage_progress(source.name)
    done_queue = progress.get("queue")
    done_dead = progress.get("dead")
    queued = [(key, record) for key, record in rows.queued if not _done(key, done_queue)]
    dead = [(key, record) for key, record in rows.dead if not _done(key, done_dead)]
    report.already_imported = len(rows.queued) + len(rows.dead) - len(queued) - len(dead)
    for start in range(0, len(queued), BATCH_ROWS):
        batch = queued[start : start + BATCH_ROWS]
        outbox.import_salvaged(
            source.name,
            [record for _, record in batch],
            [],
            {"queue": batch[-1][0], "dead": done_dead},
        )
        done_queue = batch[-1][0]
        report.queued += len(batch)
    for start in range(0, len(dead), BATCH_ROWS):
        batch = dead[start : start + BATCH_ROWS]
        outbox.import_salvaged(
            source.name,
            [],
            [_salvaged_dead(record, source.name) for _, record in batch],
            {"queue": done_queue, "dead": batch[-1][0]},
        )
        report.dead += len(batch)
    return report


def _done(key: int, done_up_to: Any) -> bool:
    return type(done_up_to) is int and key <= done_up_to


def _damage_note(source: Path) -> str | None:
    try:
        return (source / DAMAGE_NOTE).read_text(encoding="utf-8")[:500]
    except OSError:
        return None


def _salvaged_dead(record: dict[str, Any], source: str) -> dict[str, Any]:
    return {**record, "reason": f"salvaged from {source}: {record.get('reason', '')}"}


def read_rows(db_path: Path) -> _Rows:
    """Every readable queue row and dead letter of ``db_path``, in key order, and a line
    for each thing that could not be read. Never raises for damage; never writes."""
    rows = _Rows()
    try:
        uri = db_path.resolve().as_uri() + "?mode=ro"
        connection = sqlite3.connect(uri, uri=True, timeout=5.0)
        connection.text_factory = decode_text
    except (sqlite3.Error, OSError, ValueError) as exc:
        rows.unreadable.append(f"the file cannot be opened: {exc}")
        return rows
    try:
        for rowid, key, raw, mode, filename, value in _scan(connection, rows.unreadable):
            _sort_row(rows, rowid, key, raw, mode, filename, value)
    finally:
        connection.close()
    rows.queued.sort(key=lambda pair: pair[0])
    rows.dead.sort(key=lambda pair: pair[0])
    return rows


def _sort_row(
    rows: _Rows, rowid: int, key: Any, raw: Any, mode: Any, filename: Any, value: Any
) -> None:
    if raw != 1 or type(key) not in (int, str):
        rows.unreadable.append(f"row {rowid}: its key is not a plain int or str (not decoded)")
        return
    if type(key) is str and not key.startswith(DEAD_PREFIX):
        return  # the id counter and other bookkeeping: nothing to deliver
    try:
        record = decode_row(mode, filename, value)
    except UnsafeRowError as exc:
        rows.unreadable.append(f"key {key}: {exc}")
        return
    if type(key) is int:
        if is_queue_record(record):
            rows.queued.append((key, record))
        else:
            rows.unreadable.append(f"id {key}: not an outbox record")
        return
    suffix = key[len(DEAD_PREFIX) :]
    if suffix.isdigit() and isinstance(record, dict) and isinstance(record.get("p"), dict):
        rows.dead.append((int(suffix), record))
    else:
        rows.unreadable.append(f"dead letter {key[:40]!r}: not a dead letter record")


_CHUNK_QUERY: Final = (
    "SELECT rowid, key, raw, mode, filename, value FROM Cache"
    " WHERE rowid > ? ORDER BY rowid LIMIT ?"
)
_ROW_QUERY: Final = "SELECT rowid, key, raw, mode, filename, value FROM Cache WHERE rowid = ?"


def _scan(connection: sqlite3.Connection, unreadable: list[str]) -> Iterator[tuple[Any, ...]]:
    """Every row by rowid, in chunks; a chunk SQLite cannot read is read row by row, so
    damage costs only the rows it touched."""
    try:
        (highest,) = connection.execute("SELECT max(rowid) FROM Cache").fetchone()
    except (sqlite3.Error, ValueError) as exc:
        unreadable.append(f"the Cache table cannot be read: {exc}")
        return
    if highest is None:
        return
    after = 0
    while after < highest:
        try:
            chunk = connection.execute(_CHUNK_QUERY, (after, BATCH_ROWS)).fetchall()
        except (sqlite3.Error, ValueError):
            chunk = None
        if chunk is not None:
            if not chunk:
                return
            yield from chunk
            after = chunk[-1][0]
            continue
        for rowid in range(after + 1, min(after + BATCH_ROWS, highest) + 1):
            try:
                row = connection.execute(_ROW_QUERY, (rowid,)).fetchone()
            except (sqlite3.Error, ValueError) as exc:
                unreadable.append(f"row {rowid}: {exc}")
                continue
            if row is not None:
                yield row
        after = min(after + BATCH_ROWS, highest)
