"""Durations and sizes as people write them in YAML: ``500ms``, ``30s``, ``2m``, ``256MB``.

A bare number is refused on purpose: ``on_delay: 60`` could mean seconds or minutes, and
the engineer who wrote it knows which.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Final

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from edge_agent.common.time_units import (
    NS_PER_DAY,
    NS_PER_HOUR,
    NS_PER_MINUTE,
    NS_PER_MS,
    NS_PER_S,
    NS_PER_US,
)

NS_PER: Final[dict[str, int]] = {
    "ns": 1,
    "us": NS_PER_US,
    "ms": NS_PER_MS,
    "s": NS_PER_S,
    "m": NS_PER_MINUTE,
    "h": NS_PER_HOUR,
    "d": NS_PER_DAY,
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

# The longest duration any option may hold. Nothing at a plant waits longer than a year
# (an annual inspection's `due_in` is the longest meant), and a bound here keeps every
# time computed from a duration (a due date, a deadline) inside what a date can hold.
MAX_DURATION_NS: Final = 366 * NS_PER["d"]
# The largest size any option may hold: more than any gateway's disk.
MAX_SIZE_BYTES: Final = 1000**4
# Digits beyond this make no sense in a duration or a size, and float() would turn them
# into infinity.
_MAX_DIGITS: Final = 30


def parse_duration(value: object) -> int:
    """``"1m30s"`` → 90_000_000_000 (integer nanoseconds)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, got a true/false value")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:  # `.nan`, `.inf`, `1e400`, `-5`
            raise ValueError(
                f"{value} is not a duration; write a number of zero or more with a unit: "
                "ms, s, m, h or d (e.g. 30s)"
            )
        raise ValueError(
            f"a duration needs a unit: write {value}s, {value}ms or {value}m, not a bare number"
        )
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 500ms, 30s, 2m or 1h")
    text = value.strip()
    if re.fullmatch(r"\d+:\d+(:\d+)?", text):
        raise ValueError(
            f"{_shown(text)} looks like a clock time; write a duration with a unit such as "
            "90s or 1m30s"
        )
    match = _DURATION_RE.match(text)
    if match:
        return _bounded_duration(text, [(match.group(1), match.group(2))])
    parts = _DURATION_PART_RE.findall(text)
    if parts and "".join(n + u for n, u in parts) == text.replace(" ", ""):
        return _bounded_duration(text, parts)
    raise ValueError(
        f"{_shown(text)} is not a duration; write a number with a unit: ms, s, m, h or d (e.g. 30s)"
    )


def _bounded_duration(text: str, parts: list[tuple[str, str]]) -> int:
    """The sum of ``(number, unit)`` parts in nanoseconds, refused above a year."""
    if any(len(number) > _MAX_DIGITS for number, _unit in parts):
        total = MAX_DURATION_NS + 1
    else:
        total = sum(round(float(number) * NS_PER[unit]) for number, unit in parts)
    if total > MAX_DURATION_NS:
        raise ValueError(
            f"{_shown(text)} is longer than {format_duration(MAX_DURATION_NS)}, the longest "
            "duration an option may hold"
        )
    return total


def _shown(text: str) -> str:
    """The value as quoted in a message, cut short: an error line stays one line."""
    return repr(text if len(text) <= 40 else text[:37] + "...")


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
        raise ValueError(f"{_shown(value)} is not a size; write a number with B, KB, MB, GB or MiB")
    number = match.group(1)
    size = (
        round(float(number) * BYTES_PER[match.group(2).upper()])
        if len(number) <= _MAX_DIGITS
        else MAX_SIZE_BYTES + 1
    )
    if size > MAX_SIZE_BYTES:
        raise ValueError(
            f"{_shown(value.strip())} is larger than {format_size(MAX_SIZE_BYTES)}, the largest "
            "size an option may hold"
        )
    return size


def format_size(n: int) -> str:
    """The shortest exact text for a size: ``"256MB"``, ``"1GiB"``, ``"0B"``."""
    if n == 0:
        return "0B"
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
