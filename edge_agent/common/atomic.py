"""Files replaced atomically (temporary file, fsync, rename, directory fsync), and the
temporary files a crash leaves behind.

Every writer of a state file goes through :func:`write_atomic`: after a crash or power loss
the file holds the old content or the new one, never a torn mix, and a write that fails
(a full disk, a file size limit, an I/O error) removes its temporary file before raising.
Only a crash in the middle can leave one: :func:`remove_stale_temporaries` removes those at
start. The temporary's name carries the writer's pid (``.NAME.PID.tmp``), so a start never
removes the file another live process (the command line) is writing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Final

log = logging.getLogger(__name__)

TEMPORARY_SUFFIX: Final = ".tmp"


def temporary_for(path: Path) -> Path:
    """Where this process writes the next content of ``path`` before renaming it."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMPORARY_SUFFIX}")


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably (raises OSError); no temporary
    file is left behind when it fails."""
    temporary = temporary_for(path)
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    fsync_directory(path.parent)


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object a small state file holds; empty when the file is missing, unreadable
    or holds anything else (its reader then starts afresh, as on a first start)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8 at all
        return {}
    return data if isinstance(data, dict) else {}


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _writer_alive(name: str) -> bool:
    """Whether the pid in ``.NAME.PID.tmp`` is a live process other than this one."""
    pid_text = name.removesuffix(TEMPORARY_SUFFIX).rpartition(".")[2]
    if not pid_text.isdigit() or len(pid_text) > 10:
        return False  # an older name without a pid, or not ours: stale
    pid = int(pid_text)
    if pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's live process: leave it
    return True


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Remove the ``*.tmp`` files in ``directory`` (not below) that no live writer holds;
    logged. Returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed  # no directory yet, or unreadable: the caller's open says so
    for entry in entries:
        if not entry.name.endswith(TEMPORARY_SUFFIX) or _writer_alive(entry.name):
            continue
        try:
            if not entry.is_file() or entry.is_symlink():
                continue
            entry.unlink()
        except OSError as exc:
            log.warning(
                "A temporary file left by a crash could not be removed.",
                extra={"path": str(entry), "error": str(exc)},
            )
            continue
        removed.append(entry)
    if removed:
        log.warning(
            "Removed temporary files left by an interrupted write.",
            extra={"files": sorted(str(path) for path in removed)},
        )
    return removed
