"""Is an outbox's SQLite file fit to be handed to diskcache? Checked before every open.

diskcache trusts its file: it applies every ``Settings`` row (``sqlite_*`` rows become
PRAGMAs, ``disk_*`` rows constructor arguments, any other row an attribute of the cache),
and a key or counter of the wrong type fails deep inside it with a raw ``TypeError``. A
file that is not SQLite, or whose pages are damaged, fails at the first query. So before
diskcache sees a file, :func:`find_damage` reads it with the standard ``sqlite3`` module:
page integrity (``PRAGMA quick_check``), the schema diskcache would create, the
``Settings`` rows (known keys, plain values), the keys (int queue ids, our text keys) and
the id counter. It never decodes a value: damaged *values* are a row's problem, found when
the row is read, and dead-lettered there (see :mod:`.store`).

A locked or unreadable file (permissions, I/O) is not damage: :class:`StoreUnavailable`.
A file of a later release's format is not damage either: :class:`NewerFormatError`, raised
before anything else is looked at (its tables may well differ from ours).
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from diskcache.core import DEFAULT_SETTINGS, EVICTION_POLICY, METADATA, MODE_RAW

from edge_agent.common.schema_version import (
    SchemaVersionError,
    check_sqlite,
    stamp_sqlite,
)
from edge_agent.errors import EdgeAgentError

DB_NAME: Final = "cache.db"
SCHEMA_VERSION: Final = 1
"""The outbox's row format (``PRAGMA user_version`` of its file, 0 in 0.1.0's = version 1);
see :mod:`edge_agent.common.schema_version`."""

log = logging.getLogger(__name__)

_CORRUPTION_CODES: Final = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_SQLITE_HEADER: Final = b"SQLite format 3\x00"
# Text keys: ours are "meta:..." and "dead:<20 digits>"; other stages may add their own
# prefixes, so only the shape of a text key is checked, and dead-letter keys exactly.
_TEXT_KEY: Final = re.compile(r"[\x21-\x7e]{1,200}")
_DEAD_KEY: Final = re.compile(r"dead:\d{20}")
_CACHE_COLUMNS: Final = [
    *("rowid", "key", "raw", "store_time", "expire_time", "access_time", "access_count"),
    *("tag", "size", "mode", "filename", "value"),
]
_TRIGGERS: Final = frozenset(
    {
        "Settings_count_insert",
        "Settings_count_delete",
        "Settings_size_insert",
        "Settings_size_update",
        "Settings_size_delete",
    }
)
_JOURNAL_MODES: Final = frozenset({"delete", "truncate", "persist", "memory", "wal", "off"})
_INT64: Final = range(-(2**63), 2**63)


class StoreUnavailable(EdgeAgentError):
    """The file could not be read for a reason that is not damage (locked, permissions)."""


def is_corruption(exc: BaseException) -> bool:
    """True for SQLite's "database disk image is malformed" and "file is not a database"."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _CORRUPTION_CODES
    text = str(exc)
    return "malformed" in text or "not a database" in text


_PASSING_CODES: Final = frozenset({3, 5, 6, 7, 8, 10, 13, 14, 23})
"""SQLITE_PERM, BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN, AUTH: the file could
not be read now, which says nothing about its content."""


def _is_passing(exc: sqlite3.Error) -> bool:
    """True when SQLite could not look at the file (locked, I/O, permissions), False when
    it looked and refused what it found (e.g. "unsupported file format": a header byte)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _PASSING_CODES
    text = str(exc).lower()
    return any(word in text for word in ("locked", "busy", "unable to open", "i/o", "readonly"))


def decode_text(data: bytes) -> str:
    """SQLite TEXT as str; damaged bytes become U+FFFD instead of an exception."""
    return data.decode("utf-8", "replace")


@contextlib.contextmanager
def _reader(db_path: Path, timeout_s: float) -> Iterator[sqlite3.Connection]:
    # A normal connection, not ``mode=ro``: after a crash the WAL may need recovery, and a
    # read-only connection would take a healthy file for a broken one. Only reads follow.
    connection = sqlite3.connect(str(db_path), timeout=timeout_s, isolation_level=None)
    connection.text_factory = decode_text
    try:
        yield connection
    finally:
        connection.close()


def find_damage(db_path: Path, timeout_s: float = 10.0) -> str | None:
    """Why the outbox file ``db_path`` must not be opened, or None if it may (or does not
    exist yet). Raises :class:`StoreUnavailable` when it cannot tell (locked, I/O)."""
    try:
        with db_path.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreUnavailable(f"cannot read {db_path.name}: {exc.strerror}") from exc
    if not header:
        # diskcache writes its tables in the same call that creates the file: an empty file
        # found later was truncated (its events are gone, or only in the WAL beside it).
        return "the file was truncated to 0 bytes"
    if header != _SQLITE_HEADER[: len(header)]:
        return "the file is not an SQLite database"
    try:
        with _reader(db_path, timeout_s) as db:
            check_sqlite(db, "outbox", str(db_path), SCHEMA_VERSION)
            return _schema_damage(db)
    except SchemaVersionError as exc:
        return str(exc)
    except sqlite3.Error as exc:
        if is_corruption(exc) or not _is_passing(exc):
            return f"SQLite reports damage: {exc}"
        raise StoreUnavailable(f"cannot check {db_path.name}: {exc}") from exc
    except UnicodeDecodeError:
        # sqlite3 decodes SQLite's error message, which quotes the damaged schema.
        return "SQLite reports damage (in a message that is not even text)"


def stamp_version(db_path: Path, timeout_s: float = 10.0) -> None:
    """Record :data:`SCHEMA_VERSION` in a file that passed :func:`find_damage` (and was
    migrated, when older)."""
    with _reader(db_path, timeout_s) as db:
        stamp_sqlite(db, SCHEMA_VERSION)


def _schema_damage(db: sqlite3.Connection) -> str | None:
    problems = [str(row[0]) for row in db.execute("PRAGMA quick_check(5)")]
    if problems != ["ok"]:
        return "SQLite integrity check failed: " + "; ".join(problems)[:300]
    tables = {
        str(name): str(kind)
        for name, kind in db.execute(
            "SELECT name, type FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        )
    }
    if not tables:
        return None  # an empty file: diskcache creates the tables
    if "Settings" in tables:
        damage = _settings_damage(db)
        if damage is not None:
            return damage
    triggers = {name for name, kind in tables.items() if kind == "trigger"}
    if not triggers <= _TRIGGERS:
        return f"unexpected triggers in the outbox file: {sorted(triggers - _TRIGGERS)}"
    if "Cache" not in tables:
        return None
    columns = [str(row[1]) for row in db.execute("PRAGMA table_info(Cache)")]
    if columns != _CACHE_COLUMNS:
        return f"the Cache table has the wrong columns: {columns}"
    return _key_damage(db)


def _settings_damage(db: sqlite3.Connection) -> str | None:
    known: dict[str, Any] = {**DEFAULT_SETTINGS, **METADATA}
    for key, value in db.execute("SELECT key, value FROM Settings"):
        if key not in known:
            return f"unknown Settings row {str(key)[:60]!r}"
        expected = known[key]
        if type(value) is not type(expected):
            return f"Settings row {key!r} holds a {type(value).__name__}"
        if isinstance(value, int) and value not in _INT64:
            return f"Settings row {key!r} is out of range"
        if key == "eviction_policy" and value not in EVICTION_POLICY:
            return f"Settings row {key!r} names an unknown policy"
        if key == "sqlite_journal_mode" and str(value).lower() not in _JOURNAL_MODES:
            return f"Settings row {key!r} names an unknown journal mode"
    return None


def _key_damage(db: sqlite3.Connection) -> str | None:
    (bad_keys,) = db.execute(
        "SELECT count(*) FROM Cache WHERE raw IS NOT 1 OR typeof(key) NOT IN ('integer', 'text')"
    ).fetchone()
    if bad_keys:
        return f"{bad_keys} row(s) with a key that is not a plain int or str"
    for (key,) in db.execute("SELECT key FROM Cache WHERE typeof(key) = 'text'"):
        if not _TEXT_KEY.fullmatch(key) or (
            key.startswith("dead:") and not _DEAD_KEY.fullmatch(key)
        ):
            return f"unknown key {key[:60]!r}"
    counter = db.execute(
        "SELECT mode, filename, typeof(value) FROM Cache WHERE key = 'meta:next-id'"
    ).fetchone()
    if counter is not None and tuple(counter) != (MODE_RAW, None, "integer"):
        return "the id counter is not a plain integer"
    return None


def highest_id(db_path: Path) -> int:
    """The highest queue id the file ever handed out, as far as it can still be read (0 if
    nothing can): a fresh outbox that replaces it starts above, so no id is reused."""
    highest = 0
    queries = (
        "SELECT max(key) FROM Cache WHERE typeof(key) = 'integer'",
        "SELECT value FROM Cache WHERE key = 'meta:next-id' AND typeof(value) = 'integer'",
    )
    try:
        uri = db_path.resolve().as_uri() + "?mode=ro"
        connection = sqlite3.connect(uri, uri=True, timeout=1.0)
    except (sqlite3.Error, OSError) as exc:
        log.info("Damaged outbox: its highest id cannot be read.", extra={"error": str(exc)})
        return 0
    try:
        for query in queries:
            try:
                row = connection.execute(query).fetchone()
            except (sqlite3.Error, ValueError) as exc:  # ValueError: an undecodable message
                log.info("Damaged outbox: an id query failed.", extra={"error": repr(exc)})
                continue
            if row is not None and type(row[0]) is int:
                highest = max(highest, row[0])
    finally:
        connection.close()
    return highest
