"""One log event per line: JSON when stderr is not a terminal, readable text when it is.

Every handler installed here carries a :class:`SecretRedactor`: any secret value registered
with :func:`register_secret` is replaced by ``***`` in the message, its arguments, the
``extra={...}`` fields and tracebacks, whatever logger emitted the record.

It also carries a :class:`RepeatLimiter`: the same message from the same logger is written
at most ``burst`` times per ``interval``; what is held back is announced by one
``Repeated log lines suppressed.`` line (fields ``suppressed``, ``suppressed_logger``,
``suppressed_message``), so a failure that repeats thousands of times a second cannot fill
the disk.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from edge_agent.common.journald import SyslogPrefixFormatter, writes_to_journal
from edge_agent.redaction import redact
from edge_agent.redaction import redact_value as _redact_value

# The attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS: Final = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra={...}`` fields of a record."""
    return {key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRS}


class SecretRedactor(logging.Filter):
    """Rewrites a record in place so that no registered secret survives in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        for key, value in extra_fields(record).items():
            setattr(record, key, _redact_value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


@dataclass
class _Window:
    started: float
    passed: int = 0
    suppressed: int = 0
    level: int = logging.INFO


class RepeatLimiter(logging.Filter):
    """At most ``burst`` records with the same (logger, message template) per ``interval``
    seconds; then one summary line per window saying how many were held back.

    The summary of a window is written when the window has ended and any record reaches
    the handler (the same message again, or any other), at most once a second a sweep.
    ``max_keys`` bounds the memory (the least recently seen message is forgotten).
    """

    SUMMARY: Final = "Repeated log lines suppressed."

    def __init__(
        self,
        handler: logging.Handler,
        *,
        burst: int = 20,
        interval_s: float = 10.0,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._handler = handler
        self.burst = burst
        self.interval_s = interval_s
        self._max_keys = max_keys
        self._clock = clock
        self._windows: OrderedDict[tuple[str, str], _Window] = OrderedDict()
        self._lock = threading.Lock()
        self._last_sweep = clock()

    def filter(self, record: logging.LogRecord) -> bool:
        now = self._clock()
        key = (record.name, str(record.msg))
        with self._lock:
            due = self._sweep(now)
            window = self._windows.get(key)
            if window is not None and now - window.started >= self.interval_s:
                if window.suppressed:
                    due.append((key, window))
                window = None
            if window is None:
                window = _Window(started=now)
                self._windows[key] = window
                while len(self._windows) > self._max_keys:
                    self._windows.popitem(last=False)
            self._windows.move_to_end(key)
            window.level = max(window.level, record.levelno)
            allowed = window.passed < self.burst
            if allowed:
                window.passed += 1
            else:
                window.suppressed += 1
        for (logger_name, message), ended in due:
            self._summarise(logger_name, message, ended)
        return allowed

    def _sweep(self, now: float) -> list[tuple[tuple[str, str], _Window]]:
        """Windows that ended with lines held back (removed); at most once a second."""
        if now - self._last_sweep < 1.0:
            return []
        self._last_sweep = now
        ended = [
            (key, window)
            for key, window in self._windows.items()
            if now - window.started >= self.interval_s
        ]
        for key, _ in ended:
            del self._windows[key]
        return [(key, window) for key, window in ended if window.suppressed]

    def _summarise(self, logger_name: str, message: str, window: _Window) -> None:
        record = logging.LogRecord(__name__, window.level, __file__, 0, self.SUMMARY, None, None)
        record.suppressed = window.suppressed
        record.suppressed_logger = logger_name
        record.suppressed_message = message
        record.interval_s = self.interval_s
        # Through the handler's filters too: redacted, and limited like any other line.
        self._handler.handle(record)


def _json_default(value: Any) -> str:
    return str(value)


class JsonFormatter(logging.Formatter):
    """``{"time": ..., "level": ..., "logger": ..., "message": ..., **extra}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            event.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            event["exception"] = record.exc_text
        return redact(json.dumps(event, default=_json_default, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """``12:00:01.234 WARNING edge_agent.x: Message. key=value ...`` for people at a terminal.

    Tracebacks are kept on one line too (``\\n`` escaped): one event, one line."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        parts = [f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"]
        parts.extend(f"{key}={value}" for key, value in extra_fields(record).items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            parts.append("exception=" + record.exc_text.replace("\n", "\\n"))
        return redact(" ".join(parts))


def configure_logging(
    level: str = "info",
    fmt: str = "auto",
    stream: TextIO | None = None,
    *,
    repeat_burst: int = 20,
    repeat_interval_s: float = 10.0,
) -> None:
    """Send every log record to ``stream`` (stderr) as one line, replacing earlier handlers.

    ``fmt`` is ``json``, ``text`` or ``auto`` (text on a terminal, JSON otherwise); lines to
    journald start with their syslog priority (:mod:`.journald`). The same
    message from the same logger is written at most ``repeat_burst`` times per
    ``repeat_interval_s`` (see :class:`RepeatLimiter`).
    """
    target = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not _is_tty(target))
    handler = logging.StreamHandler(target)
    formatter: logging.Formatter = JsonFormatter() if use_json else TextFormatter()
    if writes_to_journal(target):
        # journald takes the level from a "<N>" prefix (journalctl -p warning).
        formatter = SyslogPrefixFormatter(formatter)
    handler.setFormatter(formatter)
    # The limiter first: a held-back line costs no formatting and no redaction.
    handler.addFilter(RepeatLimiter(handler, burst=repeat_burst, interval_s=repeat_interval_s))
    handler.addFilter(SecretRedactor())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    set_log_level(level)


def set_log_level(level: str) -> None:
    """The root level (``debug``..``error``), third-party loggers kept quieter (a reload may
    call this alone)."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    # Third-party chatter at INFO (every HTTP request, every OPC UA session step) drowns
    # the agent's own events.
    for noisy in ("httpx", "httpcore", "asyncua"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # asyncua's client warns of every service fault it then raises: a refused certificate or
    # user at each reconnect attempt. The OPC UA source logs it once per change of cause.
    logging.getLogger("asyncua.client.ua_client").setLevel(max(logging.ERROR, root.level))
    # pymodbus warns on every reconnect attempt ("Repeating...."); the Modbus source logs
    # the connection state itself, with the connection's name and the next retry.
    logging.getLogger("pymodbus").setLevel(max(logging.ERROR, root.level))


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
