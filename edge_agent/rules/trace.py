"""Recorded traces of readings (JSON lines) for ``edge-agent replay``.

One reading per line: ``{"time": "2026-01-05T10:00:00Z", "sensor": "p101_vibration",
"value": 7.3}`` with an optional ``"quality": "good|uncertain|bad"``; ``"value": null`` is a
bad reading. Blank lines are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Final

from edge_agent.alerts import parse_time
from edge_agent.errors import EdgeAgentError
from edge_agent.readings import Quality, Reading, Value

TRACE_KEYS: Final = frozenset({"time", "sensor", "value", "quality"})


class TraceError(EdgeAgentError, ValueError):
    """A trace line that is not a reading; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


def parse_trace_line(text: str, line: int) -> Reading:
    try:
        data = json.loads(text.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        raise TraceError(line, f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(data, dict):
        raise TraceError(line, 'expected a JSON object such as {"time": ..., "sensor": ...}')
    unknown = sorted(set(data) - TRACE_KEYS)
    if unknown:
        raise TraceError(line, f"unknown key {unknown[0]!r}; a reading has {sorted(TRACE_KEYS)}")
    for key in ("time", "sensor"):
        if key not in data:
            raise TraceError(line, f"missing {key!r}")
    stamp, sensor = data["time"], data["sensor"]
    if not isinstance(stamp, str):
        raise TraceError(line, "'time' must be an RFC 3339 string such as 2026-01-05T10:00:00Z")
    try:
        time_ns = parse_time(stamp)
    except ValueError as exc:
        raise TraceError(line, f"'time' {stamp!r} is not an RFC 3339 time: {exc}") from exc
    if not isinstance(sensor, str) or not sensor:
        raise TraceError(line, "'sensor' must be a sensor id (a non-empty string)")
    if "value" not in data:
        raise TraceError(line, "missing 'value' (write null for a reading without a value)")
    value: Value = data["value"]
    if value is not None and not isinstance(value, bool | int | float | str):
        raise TraceError(line, "'value' must be a number, true/false, a string or null")
    quality_text = data.get("quality", "good")
    try:
        quality = Quality(quality_text)
    except ValueError as exc:
        raise TraceError(
            line, f"'quality' is {quality_text!r}; expected good, uncertain or bad"
        ) from exc
    if value is None:
        quality = Quality.BAD
    return Reading(sensor, value, quality, time_ns)


def decode_lines(lines: Iterable[bytes]) -> Iterator[str]:
    """Lines of a trace opened in binary mode as text; a line that is not UTF-8 is a
    :class:`TraceError` with its number (decoding the whole file would lose it)."""
    for number, raw in enumerate(lines, start=1):
        try:
            # A byte-order mark some editors write is not part of the first reading.
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise TraceError(number, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def parse_trace(lines: Iterable[str]) -> Iterator[Reading]:
    """Readings in file order; raises :class:`TraceError` at the first bad line."""
    for number, text in enumerate(lines, start=1):
        if text.strip():
            yield parse_trace_line(text, number)
