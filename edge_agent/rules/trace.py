"""Recorded traces of readings (JSON lines) for ``edge-agent replay``.

One reading per line: ``{"time": "2026-01-05T10:00:00Z", "sensor": "p101_vibration",
"value": 7.3}`` with an optional ``"quality": "good|uncertain|bad"``; ``"value": null`` is a
bad reading. Blank lines are skipped.

The alarm lifecycle's inputs may be lines too, so that its states are testable as data:
a person's command ``{"time": ..., "command": "shelve", "rule": "temp-high", "for": "2h",
"by"?, "reason"?, "until_clear"?, "note"?, "id"?}`` (``asset`` instead of ``rule`` for
``oos``/``return``), and a work order's status ``{"time": ..., "work_order": {"rule": ...,
"status": "IN_PROGRESS", "id"?: 1, "assigned"?: false}}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from edge_agent.alerts import parse_time
from edge_agent.errors import EdgeAgentError
from edge_agent.readings import Quality, Reading, Value

TRACE_KEYS: Final = frozenset({"time", "sensor", "value", "quality"})
COMMAND_KEYS: Final = frozenset(
    {"time", "command", "rule", "asset", "for", "by", "reason", "until_clear", "note", "id"}
)
WORK_ORDER_KEYS: Final = frozenset({"rule", "status", "id", "assigned"})
REPLAY_BY: Final = "replay"
"""Who a trace's command is by when the line does not say."""


class TraceError(EdgeAgentError, ValueError):
    """A trace line that is not a reading; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(frozen=True)
class TraceCommand:
    """A lifecycle command line: its time and the command as the agent would receive it
    (checked when the trace is read; applied with the site's limits)."""

    time_ns: int
    line: int
    data: dict[str, Any]


@dataclass(frozen=True)
class TraceWorkOrder:
    """A work order status line."""

    time_ns: int
    line: int
    rule: str
    status: str
    work_order_id: int
    assigned: bool


TraceItem = Reading | TraceCommand | TraceWorkOrder


def parse_trace_item(text: str, line: int) -> TraceItem:
    """A trace line: a reading, a command or a work order status."""
    data = _object(text, line)
    if "command" in data:
        return _command(data, line)
    if "work_order" in data:
        return _work_order(data, line)
    return _reading(data, line)


def _object(text: str, line: int) -> dict[str, Any]:
    try:
        data = json.loads(text.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        raise TraceError(line, f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(data, dict):
        raise TraceError(line, 'expected a JSON object such as {"time": ..., "sensor": ...}')
    return data


def _time_of(data: dict[str, Any], line: int) -> int:
    if "time" not in data:
        raise TraceError(line, "missing 'time'")
    stamp = data["time"]
    if not isinstance(stamp, str):
        raise TraceError(line, "'time' must be an RFC 3339 string such as 2026-01-05T10:00:00Z")
    try:
        return parse_time(stamp)
    except ValueError as exc:
        raise TraceError(line, f"'time' {stamp!r} is not an RFC 3339 time: {exc}") from exc


def _command(data: dict[str, Any], line: int) -> TraceCommand:
    from edge_agent.config.units import MAX_DURATION_NS
    from edge_agent.rules.lifecycle import CommandError, parse_command

    unknown = sorted(set(data) - COMMAND_KEYS)
    if unknown:
        raise TraceError(
            line, f"unknown key {unknown[0][:64]!r}; a command has {sorted(COMMAND_KEYS)}"
        )
    time_ns = _time_of(data, line)
    command = {k: v for k, v in data.items() if k not in ("time", "command")}
    command["action"] = data["command"]
    command.setdefault("id", f"replay-{line}")
    command.setdefault("by", REPLAY_BY)
    if data["command"] in ("shelve", "oos"):
        command.setdefault("reason", "replayed")
    try:
        # The fields are checked now (a bad line is the trace's error); the site's own
        # limits (alarms.max_shelve) when it is applied, as the agent does.
        parse_command(command, max_shelve_ns=MAX_DURATION_NS)
    except CommandError as exc:
        raise TraceError(line, f"not a command: {exc}") from exc
    return TraceCommand(time_ns, line, command)


def _work_order(data: dict[str, Any], line: int) -> TraceWorkOrder:
    from edge_agent.rules.lifecycle_state import WORK_ORDER_STATUSES
    from edge_agent.wire.alert import is_wire_id

    unknown = sorted(set(data) - {"time", "work_order"})
    if unknown:
        raise TraceError(
            line, f"unknown key {unknown[0]!r}; a work order line has time, work_order"
        )
    time_ns = _time_of(data, line)
    order = data["work_order"]
    if not isinstance(order, dict):
        raise TraceError(line, "'work_order' must be an object with rule and status")
    extra = sorted(set(order) - WORK_ORDER_KEYS)
    if extra:
        raise TraceError(
            line, f"unknown key work_order.{extra[0][:64]!r}; it has {sorted(WORK_ORDER_KEYS)}"
        )
    rule, status = order.get("rule"), order.get("status")
    if not isinstance(rule, str) or not rule:
        raise TraceError(line, "'work_order.rule' must be a rule id")
    if not isinstance(status, str) or status not in WORK_ORDER_STATUSES:
        raise TraceError(line, f"'work_order.status' must be one of {sorted(WORK_ORDER_STATUSES)}")
    work_order_id = order.get("id", 1)
    if not is_wire_id(work_order_id):
        raise TraceError(line, "'work_order.id' must be an id in 1..2**63-1")
    assigned = order.get("assigned", False)
    if not isinstance(assigned, bool):
        raise TraceError(line, "'work_order.assigned' must be true or false")
    return TraceWorkOrder(time_ns, line, rule, str(status), work_order_id, assigned)


def parse_trace_line(text: str, line: int) -> Reading:
    """A reading line (a command or work order line is an error here)."""
    return _reading(_object(text, line), line)


def _reading(data: dict[str, Any], line: int) -> Reading:
    unknown = sorted(set(data) - TRACE_KEYS)
    if unknown:
        raise TraceError(line, f"unknown key {unknown[0]!r}; a reading has {sorted(TRACE_KEYS)}")
    for key in ("time", "sensor"):
        if key not in data:
            raise TraceError(line, f"missing {key!r}")
    time_ns = _time_of(data, line)
    sensor = data["sensor"]
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
