"""Durations and sizes as people write them in YAML: ``500ms``, ``30s``, ``2m``, ``256MB``.

A bare number is refused on purpose: ``on_delay: 60`` could mean seconds or minutes, and
the engineer who wrote it knows which.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

NS_PER: Final[dict[str, int]] = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
    "d": 86400 * 1_000_000_000,
}
_DURATION_RE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h|d)\s*$")
_DURATION_PART_RE: Final = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h|d)")

BYTES_PER: Final[dict[str, int]] = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
}
_SIZE_RE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)\s*$", re.IGNORECASE)


def parse_duration(value: object) -> int:
    """``"1m30s"`` → 90_000_000_000 (integer nanoseconds)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, got a true/false value")
    if isinstance(value, int | float):
        raise ValueError(
            f"a duration needs a unit: write {value}s, {value}ms or {value}m, not a bare number"
        )
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 500ms, 30s, 2m or 1h")
    text = value.strip()
    if re.fullmatch(r"\d+:\d+(:\d+)?", text):
        raise ValueError(
            f"{text!r} looks like a clock time; write a duration with a unit such as 90s or 1m30s"
        )
    match = _DURATION_RE.match(text)
    if match:
        return round(float(match.group(1)) * NS_PER[match.group(2)])
    parts = _DURATION_PART_RE.findall(text)
    if parts and "".join(n + u for n, u in parts) == text.replace(" ", ""):
        return sum(round(float(n) * NS_PER[u]) for n, u in parts)
    raise ValueError(
        f"{text!r} is not a duration; write a number with a unit: ms, s, m, h or d (e.g. 30s)"
    )


def format_duration(ns: int) -> str:
    """The shortest exact text for a duration: 90 s → ``"90s"``, 120 s → ``"2m"``."""
    if ns == 0:
        return "0s"
    for unit in ("d", "h", "m", "s", "ms", "us"):
        if ns % NS_PER[unit] == 0:
            return f"{ns // NS_PER[unit]}{unit}"
    return f"{ns}ns"


def parse_size(value: object) -> int:
    """``"256MB"`` → 256_000_000 bytes; ``"1GiB"`` → 1_073_741_824."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 256MB, got a true/false value")
    if isinstance(value, int):
        raise ValueError(f"a size needs a unit: write {value}B, {value}KB or {value}MB")
    if not isinstance(value, str):
        raise ValueError("expected a size such as 256MB or 1GiB")
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a size; write a number with B, KB, MB, GB or MiB")
    return round(float(match.group(1)) * BYTES_PER[match.group(2).upper()])


def format_size(n: int) -> str:
    for unit in ("GB", "MB", "KB"):
        if n % BYTES_PER[unit] == 0:
            return f"{n // BYTES_PER[unit]}{unit}"
    for unit in ("GIB", "MIB", "KIB"):
        if n % BYTES_PER[unit] == 0:
            return f"{n // BYTES_PER[unit]}{unit[0]}iB"
    return f"{n}B"


Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["500ms", "30s", "2m"]}),
]
"""A duration in integer nanoseconds, written with a unit in YAML."""

Size = Annotated[
    int,
    BeforeValidator(parse_size),
    PlainSerializer(format_size, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["256MB", "1GiB"]}),
]
"""A size in bytes, written with a unit in YAML."""
