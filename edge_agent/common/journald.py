"""Log lines that reach journald carry their level, so ``journalctl -p warning`` works.

systemd sets ``JOURNAL_STREAM=<device>:<inode>`` for a service whose stdout or stderr is
connected to the journal, and journald reads a leading ``<N>`` on a line as its syslog
priority (``SyslogLevelPrefix=yes``, the default; sd-daemon(3)). The prefix is added only
when the log stream *is* that journal stream: a child that inherits the variable but logs to
a pipe, a file or a terminal gets plain lines.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Mapping
from typing import Final, TextIO

# syslog priorities (sd-daemon.h): SD_CRIT 2, SD_ERR 3, SD_WARNING 4, SD_INFO 6, SD_DEBUG 7.
_PRIORITIES: Final = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
)
_DEBUG: Final = 7
# "<st_dev>:<st_ino>", two decimal numbers: anything longer is not systemd's.
_MAX_JOURNAL_STREAM_LEN: Final = 64


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level (custom levels round down to a known one)."""
    for threshold, priority in _PRIORITIES:
        if levelno >= threshold:
            return priority
    return _DEBUG


def writes_to_journal(stream: TextIO, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``stream`` is the journal stream systemd named in ``JOURNAL_STREAM``."""
    value = environ.get("JOURNAL_STREAM", "")
    if len(value) > _MAX_JOURNAL_STREAM_LEN:
        return False
    device, sep, inode = value.partition(":")
    if not (sep and device.isdigit() and inode.isdigit() and device.isascii() and inode.isascii()):
        return False
    try:
        stat = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False
    return (stat.st_dev, stat.st_ino) == (int(device), int(inode))


class SyslogPrefixFormatter(logging.Formatter):
    """``<N>`` before what ``inner`` formats (one event is one line, so one prefix)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return f"<{syslog_priority(record.levelno)}>{self._inner.format(record)}"


def print_error(text: str, level: int = logging.ERROR, stream: TextIO | None = None) -> None:
    """Print ``text`` to stderr: a line a command says before its logging is set up (why it
    cannot start). When stderr is the journal each line starts with the priority of
    ``level``, so that ``journalctl -p err`` shows why the service does not start."""
    target = stream if stream is not None else sys.stderr
    prefix = f"<{syslog_priority(level)}>" if writes_to_journal(target) else ""
    for line in text.splitlines() or [""]:
        print(f"{prefix}{line}", file=target, flush=True)
