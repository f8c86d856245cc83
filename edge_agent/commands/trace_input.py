"""The trace file ``edge-agent replay`` reads, with bounds: a regular file only, lines of
at most :data:`MAX_LINE_BYTES`, and every line that is not a reading reported as a
:class:`TraceError` with its number (never a traceback).

``replay SITE /dev/zero`` once grew to 10 GiB looking for the end of its first line, and a
FIFO with no writer hung it; a line of 60,000 ``[`` raised ``RecursionError`` from the JSON
parser. A recorded reading is about 100 bytes, so the bounds are far above any real trace.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Final

from edge_agent.errors import EdgeAgentError
from edge_agent.readings import Reading
from edge_agent.rules.trace import TraceError, TraceItem, parse_trace_item, parse_trace_line

# One reading is a short JSON object; a line this long is not one.
MAX_LINE_BYTES: Final = 64 * 1024

_KINDS: Final = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


class TraceInputError(EdgeAgentError):
    """A trace that cannot be read at all; the message says why, with the path."""


def open_trace(path: Path) -> BinaryIO:
    """``path`` opened for reading in binary mode, if it is a regular file.

    Opened without blocking first, so a FIFO with no writer is refused rather than waited
    on; the check is made on the opened file, not on the name."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise TraceInputError(f"{path}: error: cannot read the trace: {exc.strerror}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise TraceInputError(
                f"{path}: error: the trace is {kind}; replay reads a recorded trace file "
                "(JSON lines), written to disk first"
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def bounded_lines(trace: BinaryIO, max_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of ``trace``; a line longer than ``max_bytes`` is a :class:`TraceError`,
    found after reading at most ``max_bytes + 1`` bytes of it."""
    number = 0
    while True:
        line = trace.readline(max_bytes + 1)
        if not line:
            return
        number += 1
        if len(line) > max_bytes:
            raise TraceError(
                number,
                f"longer than {max_bytes // 1024} KiB; a trace line holds one reading "
                "(is this a trace file?)",
            )
        yield line


def checked_readings(lines: Iterable[str]) -> Iterator[tuple[int, Reading]]:
    """The readings of a trace's text lines with their 1-based line numbers; any line that
    is not one, however it fails (nesting too deep for the JSON parser, a 5,000-digit
    number), is a TraceError."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield number, parse_trace_line(text, number)
        except TraceError:
            raise
        except (ValueError, RecursionError, OverflowError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
            raise TraceError(number, f"not a reading: {reason}") from exc


def checked_items(lines: Iterable[str]) -> Iterator[tuple[int, TraceItem]]:
    """As :func:`checked_readings`, with the alarm lifecycle's lines too: commands and
    work order statuses (``rules/trace.py``)."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield number, parse_trace_item(text, number)
        except TraceError:
            raise
        except (ValueError, RecursionError, OverflowError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
            raise TraceError(number, f"not a reading: {reason}") from exc
