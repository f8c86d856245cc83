"""SQLite write-ahead logs kept small: measured, checkpointed and truncated.

A WAL file keeps the size of its largest burst (SQLite reuses it rather than shrinking it;
~4 MB after a default auto-checkpoint), so on a small disk it takes the room the data needs.
The outbox and the work-order ledger truncate theirs (``wal_checkpoint(TRUNCATE)``) after a
drain, when it grows past :data:`WAL_TRUNCATE_BYTES`, and before refusing a write for lack of
room; the outbox counts its WAL in ``storage.max_bytes``.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

WAL_TRUNCATE_BYTES: Final = 1024 * 1024
"""A WAL larger than this is checkpointed and truncated after the write that grew it."""
JOURNAL_SIZE_LIMIT: Final = WAL_TRUNCATE_BYTES
"""``PRAGMA journal_size_limit`` for connections we own: what an automatic checkpoint
leaves of the WAL."""


def wal_path(database: Path) -> Path:
    return database.with_name(database.name + "-wal")


def wal_bytes(database: Path) -> int:
    """The size of ``database``'s WAL file (0 when there is none)."""
    try:
        return wal_path(database).stat().st_size
    except OSError:
        return 0


def truncate_wal(connection: sqlite3.Connection) -> bool:
    """Checkpoint everything and truncate the WAL to zero bytes. False (logged at debug)
    when a reader kept it from completing or SQLite refused: the next call tries again."""
    try:
        # Without waiting for readers (the busy timeout would block the writer for seconds):
        # a reader that holds the WAL makes this round give up; the next one tries again.
        (timeout_ms,) = connection.execute("PRAGMA busy_timeout").fetchone()
        connection.execute("PRAGMA busy_timeout=0")
        try:
            row = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            connection.execute(f"PRAGMA busy_timeout={int(timeout_ms)}")
    except sqlite3.Error as exc:
        log.debug("WAL checkpoint failed.", extra={"error": str(exc)})
        return False
    busy = bool(row and row[0])
    if busy:
        log.debug("WAL checkpoint incomplete: a reader holds it.")
    return not busy
