"""The C heap under a long-running agent: one malloc arena, large blocks given back.

Why (measured at 10,000 Modbus tags, docs/performance.md §2c): glibc gives every thread
that allocates (the history's and the outbox's SQLite, ``asyncio.to_thread``) an arena of
its own, and what a thread frees stays in its arena; and after the first large block
(≥ 128 KiB, e.g. a poll cycle's dicts, the site's JSON) is freed, glibc raises its mmap
threshold to that block's size, so later large temporaries are carved out of the heap and
leave holes the process keeps. One arena and a fixed threshold take ≈ 6 MiB off the RSS.

Everything here is a no-op off glibc (musl, macOS) and never fails the agent: a heap it
cannot tune is only a larger one. glibc's own ``MALLOC_ARENA_MAX`` and
``MALLOC_MMAP_THRESHOLD_`` variables, or the same tunables in ``GLIBC_TUNABLES``, when set,
win over these settings.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Final

log = logging.getLogger(__name__)

# mallopt() parameters, from glibc's <malloc.h>.
M_MMAP_THRESHOLD: Final = -3
M_ARENA_MAX: Final = -8

ARENA_MAX: Final = 1
"""The agent's threads mostly wait (on I/O or the GIL): contention on one arena costs less
than an arena per thread costs memory (measured: no CPU difference at 10,000 tags)."""
MMAP_THRESHOLD_BYTES: Final = 128 * 1024
"""glibc's initial threshold; setting it explicitly also stops glibc from raising it."""

# (glibc's variable, its tunable in GLIBC_TUNABLES, the mallopt option, our value)
_SETTINGS: Final = (
    ("MALLOC_ARENA_MAX", "glibc.malloc.arena_max", M_ARENA_MAX, ARENA_MAX),
    (
        "MALLOC_MMAP_THRESHOLD_",
        "glibc.malloc.mmap_threshold",
        M_MMAP_THRESHOLD,
        MMAP_THRESHOLD_BYTES,
    ),
)


def _glibc() -> Any | None:
    """The C library when it is glibc, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return None
        import ctypes  # only here: 0.3 MiB a process that cannot use it need not carry

        return ctypes.CDLL("libc.so.6")
    except (OSError, ValueError, AttributeError):
        return None


def tune_heap() -> list[str]:
    """Set the agent's malloc options; call before the agent starts its threads (a thread
    that has allocated keeps its arena). Returns the options set (empty off glibc)."""
    libc = _glibc()
    if libc is None:
        return []
    applied = []
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    for variable, tunable, option, value in _SETTINGS:
        if variable in os.environ or f"{tunable}=" in tunables:
            continue  # the operator's choice, already applied by glibc at start
        try:
            if libc.mallopt(option, value) == 1:
                applied.append(f"{variable}={value}")
        except (OSError, AttributeError):
            continue
    log.debug("Heap tuned.", extra={"settings": applied})
    return applied


def release_free_heap() -> bool:
    """Give the heap's free pages back to the system (``malloc_trim``): after start-up and
    after each reload, which build and free large temporaries. Returns whether glibc
    released any memory (False off glibc)."""
    libc = _glibc()
    if libc is None:
        return False
    try:
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False
