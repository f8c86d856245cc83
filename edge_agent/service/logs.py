"""One log event per line: JSON when stderr is not a terminal, readable text when it is.

Every handler installed here carries a :class:`SecretRedactor`: any secret value registered
with :func:`register_secret` is replaced by ``***`` in the message, its arguments, the
``extra={...}`` fields and tracebacks, whatever logger emitted the record.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, TextIO

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


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (stderr) as one line, replacing earlier handlers.

    ``fmt`` is ``json``, ``text`` or ``auto`` (text on a terminal, JSON otherwise).
    """
    target = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not _is_tty(target))
    handler = logging.StreamHandler(target)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(SecretRedactor())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Third-party chatter at INFO (every HTTP request, every OPC UA session step) drowns
    # the agent's own events.
    for noisy in ("httpx", "httpcore", "asyncua"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # pymodbus warns on every reconnect attempt ("Repeating...."); the Modbus source logs
    # the connection state itself, with the connection's name and the next retry.
    logging.getLogger("pymodbus").setLevel(max(logging.ERROR, root.level))


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
