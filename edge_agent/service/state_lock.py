"""One agent per state folder: an exclusive lock held for the life of the process.

Two agents on one folder (a copied site file with another health port) would each lease,
send and acknowledge the other's outbox rows and overwrite each other's rule state: alarms
sent twice or lost without a word. The lock is ``flock`` on ``<state>/agent.lock``, so the
kernel releases it when the process dies however it dies (SIGKILL, power loss: nothing
stale to clean up); the file holds the holder's PID for the message a second agent prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Final

from edge_agent.errors import EdgeAgentError

LOCK_NAME: Final = "agent.lock"
# The PID text is short; a larger file is not ours to trust.
_MAX_PID_TEXT: Final = 32


class StateFolderInUse(EdgeAgentError):
    """Another live process holds the state folder."""


class StateLock:
    """The held lock; :meth:`release` (or process exit) lets it go."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def lock_state_folder(state_dir: Path) -> StateLock:
    """Takes the folder's lock (creating the folder 0700 if needed), or raises
    :class:`StateFolderInUse` naming the PID that holds it."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / LOCK_NAME
    # Never through a symlink: the file is truncated, and a link could point anywhere.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise StateFolderInUse(
            f"another agent ({holder}) is running on the state folder {state_dir}; "
            "stop it first, or give this one its own storage.path or --state-dir"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return StateLock(fd, path)


def _holder(fd: int) -> str:
    """``PID 1234`` from the lock file, or ``PID unknown`` when it holds anything else."""
    with contextlib.suppress(OSError):
        text = os.pread(fd, _MAX_PID_TEXT, 0).decode("ascii", "replace").strip()
        if text.isdigit() and 0 < int(text) < 2**22:
            return f"PID {text}"
    return "PID unknown"
