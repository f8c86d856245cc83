"""Secrets never leave the process: one registry of secret values and one redaction point.

Every text that goes out (log lines, ``/readyz`` and ``/metrics`` bodies, dead-letter
reasons, CLI output, MQTT ``results``) passes through :func:`redact`. A secret is
registered once, where it is resolved (``${ENV}`` or ``file:``), with
:func:`register_secret`. Neutral: the agent and the hub both stand on this module.
"""

from __future__ import annotations

import threading
from typing import Any, Final

REDACTED: Final = "***"
# Secrets shorter than this are not redacted: replacing every "1" in every line would make
# output unreadable and reveal the secret's length by the pattern of stars anyway.
_MIN_SECRET_LENGTH: Final = 4

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Remember a resolved secret so that no output ever shows it."""
    if len(value) >= _MIN_SECRET_LENGTH:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    with _secrets_lock:
        # Longest first, so a secret that contains another is replaced whole.
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_value(value: Any) -> Any:
    """A JSON-like value with every registered secret replaced in its strings."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))
