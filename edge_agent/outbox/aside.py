"""Damaged outboxes are moved aside whole, kept for recovery, and never deleted.

``<state>/outbox`` that cannot be used becomes ``<state>/outbox.damaged-<UTC time>``; a
``DAMAGE.json`` inside says why and when. ``edge-agent outbox SITE recover`` salvages what
it can into the live outbox and then writes ``RECOVERED.json`` beside it: a damaged outbox
without that file is *awaiting recovery*, which ``/readyz`` reports until it is done.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Final

from edge_agent.common.atomic import fsync_directory, write_atomic

DAMAGED_INFIX: Final = ".damaged-"
DAMAGE_NOTE: Final = "DAMAGE.json"
RECOVERED_NOTE: Final = "RECOVERED.json"


def set_aside(directory: Path, reason: str) -> Path:
    """Rename ``directory`` to ``<name>.damaged-<UTC time>`` (a suffix keeps two set-asides
    in the same second apart) and note why inside. Returns the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = directory.with_name(f"{directory.name}{DAMAGED_INFIX}{stamp}")
    suffix = 1
    while target.exists():
        suffix += 1
        target = directory.with_name(f"{directory.name}{DAMAGED_INFIX}{stamp}-{suffix}")
    os.rename(directory, target)
    fsync_directory(directory.parent)
    write_note(target / DAMAGE_NOTE, {"reason": reason, "set_aside_at": time.time()})
    return target


def awaiting_recovery(directory: Path) -> list[Path]:
    """The set-aside copies of ``directory`` that ``recover`` has not finished, oldest
    first (their names sort by time)."""
    prefix = f"{directory.name}{DAMAGED_INFIX}"
    try:
        siblings = list(directory.parent.iterdir())
    except FileNotFoundError:
        return []
    return sorted(
        path
        for path in siblings
        if path.name.startswith(prefix) and path.is_dir() and not (path / RECOVERED_NOTE).exists()
    )


def write_note(path: Path, document: dict[str, Any]) -> None:
    """Write a small JSON note durably (temporary file, fsync, rename), mode 0600."""
    write_atomic(path, json.dumps(document, indent=2, ensure_ascii=False).encode())
