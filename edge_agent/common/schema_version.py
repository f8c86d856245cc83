"""The schema version of every file the agent and the hub keep, checked in one place.

Each store says which version it writes (``supported``) and hands over the version it found
in its file: ``None`` (the file predates schema versions: 0.1.0 wrote none, and that format
is version 1), an older one (:func:`check` returns it and the store migrates up, then stamps
its own), or a newer one, written by a later release that was rolled back: refused with
:class:`NewerFormatError` (naming the file, the found and the supported version and what to
do) before a single row is read, since reading a format it does not know could misread or
drop what a later release kept there. The file itself is never touched.

SQLite stores keep the version in ``PRAGMA user_version`` (0 = unversioned); JSON files in
a top-level key; PostgreSQL in a one-row table. Version numbers are per store.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Final

from edge_agent.errors import EdgeAgentError

UNVERSIONED: Final = 1
"""The version of a file that carries none (written by 0.1.0, before versions existed)."""
MAX_VERSION: Final = 1_000_000
"""A found version above this is damage, not a later release."""


class SchemaVersionError(EdgeAgentError, ValueError):
    """A schema version that is not a version at all (damage, a hand edit)."""


class NewerFormatError(EdgeAgentError):
    """A file written by a later release than this one: refused, never read."""

    def __init__(self, what: str, where: str, found: int, supported: int) -> None:
        self.what = what
        self.where = where
        self.found = found
        self.supported = supported
        super().__init__(
            f"{where}: this {what} has schema version {found}, written by a later release of "
            f"edge-agent; this release reads versions up to {supported}. Reinstall the release "
            "that wrote it, or stop the service and restore the state folder saved before the "
            'upgrade (docs/operations.md, "Rollback"). The file was left as it is.'
        )


def check(what: str, where: str, found: object, supported: int) -> int:
    """The version of a file, ``found`` as it was stored (None when it has none): it is at
    most ``supported`` (the caller migrates from it when lower). Raises
    :class:`NewerFormatError` for a later format, :class:`SchemaVersionError` for a value
    that is no version."""
    if found is None:
        return UNVERSIONED
    if isinstance(found, bool) or not isinstance(found, int) or not 1 <= found <= MAX_VERSION:
        raise SchemaVersionError(f"{where}: {what} schema version {str(found)[:40]!r} is unusable")
    if found > supported:
        raise NewerFormatError(what, where, found, supported)
    return found


def check_sqlite(db: sqlite3.Connection, what: str, where: str, supported: int) -> int:
    """:func:`check` for a SQLite file (``PRAGMA user_version``; 0 = unversioned)."""
    stored = db.execute("PRAGMA user_version").fetchone()[0]
    return check(what, where, stored or None, supported)


def stamp_sqlite(db: sqlite3.Connection, version: int) -> None:
    """Record ``version`` in the file (after its migrations ran). A no-op when it is."""
    if db.execute("PRAGMA user_version").fetchone()[0] != version:
        db.execute(f"PRAGMA user_version = {int(version)}")


def sqlite_file_version(path: Path) -> int | None:
    """The ``user_version`` of the SQLite file at ``path`` (None when it is 0, missing or
    cannot be read: its store reports that when it opens it)."""
    if not path.is_file():
        return None
    try:
        # Not ``mode=ro``: a WAL file left by a crash needs recovery, which a read-only
        # connection cannot do. Only a read follows.
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
            return int(db.execute("PRAGMA user_version").fetchone()[0]) or None
    except (sqlite3.Error, OSError, ValueError):
        return None


def json_file_version(path: Path, key: str, max_bytes: int) -> object:
    """The value of the top-level ``key`` of the JSON file at ``path`` (None when the file
    is missing, larger than ``max_bytes``, unreadable or not an object: its store judges)."""
    try:
        if path.stat().st_size > max_bytes:
            return None
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    return data.get(key) if isinstance(data, dict) else None
