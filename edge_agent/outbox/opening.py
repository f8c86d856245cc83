"""Opening the store's file, and moving a damaged one aside (see :mod:`.integrity` and
:mod:`.aside`): the file is checked before diskcache sees it."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path
from typing import Any, Final

from diskcache import Cache

from edge_agent.outbox.aside import set_aside
from edge_agent.outbox.errors import OutboxDamaged, OutboxError, opening_errors
from edge_agent.outbox.integrity import DB_NAME, StoreUnavailable, find_damage, stamp_version
from edge_agent.outbox.jsondisk import JsonOnlyDisk
from edge_agent.outbox.logger import log

# diskcache settings: no eviction (it silently deletes), no expiry culling (we set no
# expiry, and culling costs a query per write), FULL sync (survives power loss), values
# always inside SQLite (side files are written without fsync).
CACHE_SETTINGS: Final[dict[str, Any]] = {
    "eviction_policy": "none",
    "cull_limit": 0,
    "statistics": 0,
    "tag_index": 0,
    "sqlite_synchronous": 2,
    "sqlite_journal_mode": "wal",
    "disk_min_file_size": 2**31,
    "size_limit": 2**62,
}


def open_cache(directory: Path) -> Cache:
    """Check the file (:func:`.integrity.find_damage`), then hand it to diskcache."""
    try:
        secure_directory(directory)
        damage = find_damage(directory / DB_NAME)
    except (OSError, StoreUnavailable) as exc:
        raise OutboxError(f"cannot open the outbox in {directory}: {exc}") from exc
    if damage is not None:
        raise OutboxDamaged(f"the outbox in {directory} is damaged: {damage}")
    with opening_errors(directory, "cannot open"):
        cache = Cache(str(directory), timeout=10, disk=JsonOnlyDisk, **CACHE_SETTINGS)
    try:
        stamp_version(directory / DB_NAME)
    except sqlite3.Error as exc:
        cache.close()
        raise OutboxError(f"cannot open the outbox in {directory}: {exc}") from exc
    for child in directory.iterdir():
        if child.is_file():
            child.chmod(0o600)
    return cache


def secure_directory(directory: Path) -> None:
    """Create ``directory`` 0700 (diskcache would make it 0755) and tighten it if wider."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "Outbox directory was readable by others; set to 0700.",
            extra={"path": str(directory), "mode": oct(mode)},
        )
        directory.chmod(0o700)


def set_aside_logged(directory: Path, exc: BaseException, during: str) -> Path:
    """Move a damaged store aside (see :mod:`.aside`) and say so at ERROR."""
    try:
        aside = set_aside(directory, str(exc))
    except OSError as error:
        raise OutboxError(f"cannot move the damaged outbox {directory} aside: {error}") from exc
    log.error(
        "Outbox damaged: set aside whole and replaced by a fresh one; "
        "run 'edge-agent outbox SITE recover' to salvage its events.",
        extra={
            "path": str(directory),
            "set_aside_as": aside.name,
            "during": during,
            "damage": str(exc),
            "error_type": type(exc).__name__,
        },
    )
    return aside
