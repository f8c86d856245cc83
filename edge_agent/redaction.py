"""Secrets never leave the process: one registry of secret values and one redaction point.

Every text that goes out (log lines, ``/readyz`` and ``/metrics`` bodies, dead-letter
reasons, CLI output, MQTT payloads) passes through :func:`redact`. A secret is registered
once, where it is resolved (``${ENV}`` or ``file:``: :class:`edge_agent.config.secrets.Secret`
registers itself), with :func:`register_secret`. Neutral: the agent and the hub both stand
on this module.

A secret is also recognised in the forms the outputs themselves write it in: JSON-escaped
(an error body quoted in a JSON document) and percent-encoded (a URL in a log line).
"""

from __future__ import annotations

import io
import json
import threading
from typing import Any, Final, TextIO
from urllib.parse import quote

REDACTED: Final = "***"
# Secrets shorter than this are not redacted: replacing every "1" in every line would make
# output unreadable and reveal the secret's length by the pattern of stars anyway.
_MIN_SECRET_LENGTH: Final = 4

_secrets: set[str] = set()
# Longest first, so a secret that contains another is replaced whole; rebuilt on register
# (rare) so that redact (every output line) does not sort.
_ordered: tuple[str, ...] = ()
_secrets_lock = threading.Lock()


def _forms(value: str) -> set[str]:
    """The spellings under which ``value`` can appear in an output."""
    return {value, json.dumps(value, ensure_ascii=True)[1:-1], quote(value, safe="")}


def register_secret(value: str) -> None:
    """Remember a resolved secret so that no output ever shows it."""
    global _ordered
    if len(value) < _MIN_SECRET_LENGTH:
        return
    with _secrets_lock:
        forms = _forms(value) - _secrets
        if forms:
            _secrets.update(forms)
            _ordered = tuple(sorted(_secrets, key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_bytes(data: bytes) -> bytes:
    """:func:`redact` for an encoded (UTF-8, or any ASCII-compatible) payload; bytes that
    are not UTF-8 are kept as they are."""
    if not _ordered:
        return data
    text = data.decode("utf-8", errors="surrogateescape")
    redacted = redact(text)
    if redacted is text:
        return data
    return redacted.encode("utf-8", errors="surrogateescape")


def redact_value(value: Any) -> Any:
    """A JSON-like value with every registered secret replaced in its strings."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            (redact(key) if isinstance(key, str) else key): redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


class RedactingStream(io.TextIOBase):
    """A text stream that redacts every write before passing it to ``target``: the command
    line's stdout and stderr, so no command can print a secret whatever it prints."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self.target = target

    def write(self, text: str) -> int:
        self.target.write(redact(text))
        # What the caller gave: print() and friends check it against their own text.
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.target.encoding
