"""Rules whose conditions cannot work as written: the wrong condition for the sensor,
bands and deadbands, escalation levels, `equals:` targets, rates below one step."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from edge_agent.alerts import PRIORITY_ORDER
from edge_agent.config.checks.common import (
    INTEGER_TYPES,
    YAML11_WORDS,
    as_number,
    fmt,
    kind_of_sensor,
    kind_of_value,
    register_of,
    rules_of,
)
from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.document import Document
from edge_agent.config.messages import describe_value
from edge_agent.config.models import (
    CONDITION_KEYS,
    RegisterType,
    condition_problem,
)
from edge_agent.config.units import format_duration, parse_duration


def _sensor_is_bool(doc: Document, sensor_id: Any) -> str | None:
    """How we know a sensor is boolean (``"coil"``, ``"type bool"``), or ``None``."""
    if not isinstance(sensor_id, str):
        return None
    register = register_of(doc.get("sensors", sensor_id, "register"))
    if register is None or register.value_type is not RegisterType.BOOL:
        return None
    return register.table.value if register.table.is_bits else "type bool"


def check_conditions_fit_sensor(doc: Document) -> Iterator[Diagnostic]:
    """Number comparisons (`high`, `low`, `rate`, `flatline`) on a bool sensor never trip
    as meant; `equals` is the condition for status bits."""
    for index, rule in rules_of(doc):
        sensor_id = rule.get("sensor")
        kind = _sensor_is_bool(doc, sensor_id)
        if kind is None:
            continue
        for condition in ("high", "low", "rate", "flatline"):
            if condition in rule:
                yield doc.at(
                    ("rules", index, condition),
                    f"`{condition}` compares numbers but sensor `{sensor_id}` is a bool "
                    f"({kind}); use `equals: true` or `equals: false`",
                    key=True,
                )


def check_rule_conditions(doc: Document) -> Iterator[Diagnostic]:
    """One condition per rule (or a high/low band), reported even when another key of the
    rule is invalid and the model never got to look."""
    for index, rule in rules_of(doc):
        problem = condition_problem([key for key in CONDITION_KEYS if rule.get(key) is not None])
        if problem:
            yield doc.at(("rules", index), problem)


def check_bands(doc: Document) -> Iterator[Diagnostic]:
    """Deadbands that reach into the other alarm, and deadbands wider than the limit."""
    for index, rule in rules_of(doc):
        high, low = rule.get("high"), rule.get("low")
        high_limit = as_number(high.get("limit")) if isinstance(high, dict) else None
        low_limit = as_number(low.get("limit")) if isinstance(low, dict) else None
        high_band = (as_number(high.get("deadband")) or 0.0) if isinstance(high, dict) else 0.0
        low_band = (as_number(low.get("deadband")) or 0.0) if isinstance(low, dict) else 0.0
        here = ("rules", index)
        if high_limit is not None and low_limit is not None:
            if high_limit <= low_limit:
                yield doc.at(
                    (*here, "high", "limit"),
                    f"high.limit {fmt(high_limit)} must be above low.limit {fmt(low_limit)}",
                )
                continue
            if high_limit - high_band <= low_limit:
                yield doc.at(
                    (*here, "high", "deadband"),
                    f"deadband {fmt(high_band)} is wider than the gap to low.limit "
                    f"({fmt(high_limit - low_limit)}): the high alarm could only clear where "
                    "the low alarm trips",
                )
            if low_limit + low_band >= high_limit:
                yield doc.at(
                    (*here, "low", "deadband"),
                    f"deadband {fmt(low_band)} is wider than the gap to high.limit "
                    f"({fmt(high_limit - low_limit)}): the low alarm could only clear where "
                    "the high alarm trips",
                )
            continue
        for name, limit, band in (("high", high_limit, high_band), ("low", low_limit, low_band)):
            if limit is not None and limit != 0 and band >= abs(limit):
                clear = limit - band if name == "high" else limit + band
                yield doc.at(
                    (*here, name, "deadband"),
                    f"deadband {fmt(band)} is as wide as the limit {fmt(limit)} itself: the "
                    f"alarm would clear only at {fmt(clear)}; a deadband is a few percent of "
                    "the range",
                    "warning",
                )


def check_escalation(doc: Document) -> Iterator[Diagnostic]:
    """Escalation levels rise with priority: `above` levels increase, `below` levels
    decrease; each one escalates past the rule's own priority."""
    for index, rule in rules_of(doc):
        levels = rule.get("escalate")
        if not isinstance(levels, list):
            continue
        base = PRIORITY_ORDER.get(str(rule.get("priority", "MEDIUM")))
        high = rule.get("high")
        low = rule.get("low")
        high_limit = as_number(high.get("limit")) if isinstance(high, dict) else None
        low_limit = as_number(low.get("limit")) if isinstance(low, dict) else None
        seen: list[tuple[str, float, int, str]] = []
        for position, level in enumerate(levels):
            if not isinstance(level, dict):
                continue
            priority = str(level.get("priority"))
            rank = PRIORITY_ORDER.get(priority)
            path = ("rules", index, "escalate", position)
            if rank is None:
                continue  # the model reports an unknown priority
            if base is not None and rank <= base:
                yield doc.at(
                    (*path, "priority"),
                    f"escalating to {priority} does nothing: the rule already starts at "
                    f"{rule.get('priority', 'MEDIUM')}",
                    "warning",
                )
            for direction in ("above", "below"):
                value = as_number(level.get(direction))
                if value is None:
                    continue
                for other_dir, other_value, other_rank, other_priority in seen:
                    if other_dir != direction or other_rank == rank:
                        continue
                    rises = (value > other_value) == (rank > other_rank)
                    if direction == "below":
                        rises = (value < other_value) == (rank > other_rank)
                    if not rises:
                        word = "higher" if direction == "above" else "lower"
                        yield doc.at(
                            (*path, direction),
                            f"escalation levels are not monotone: {priority} at {direction} "
                            f"{fmt(value)} vs {other_priority} at {direction} "
                            f"{fmt(other_value)}; a higher priority needs a {word} level",
                        )
                seen.append((direction, value, rank, priority))
                if direction == "above" and high_limit is not None and value <= high_limit:
                    yield doc.at(
                        (*path, "above"),
                        f"escalation above {fmt(value)} is not above high.limit "
                        f"{fmt(high_limit)}: it escalates the moment the alarm activates",
                        "warning",
                    )
                if direction == "below" and low_limit is not None and value >= low_limit:
                    yield doc.at(
                        (*path, "below"),
                        f"escalation below {fmt(value)} is not below low.limit "
                        f"{fmt(low_limit)}: it escalates the moment the alarm activates",
                        "warning",
                    )


def _equals_problem(sensor_kind: str, target: Any) -> str | None:
    """Why ``equals: target`` can never match a sensor of ``sensor_kind`` (or ``None``)."""
    kind, _, why = sensor_kind.partition(":")
    kind = "number" if kind == "integer" else kind
    target_kind = kind_of_value(target)
    if target_kind is None:
        return None  # the model reports a value of the wrong type
    shown = describe_value(target)
    if kind == "bool":
        if target_kind == "bool" or (target_kind == "number" and target in (0, 1)):
            return None  # 0 and 1 compare equal to false and true
        return f"{why}: it is never equal to {shown}; write true or false"
    if kind == "text" and target_kind != "text":
        return f"{why}: it reads text, never {shown}; write the text in quotes"
    if kind == "number" and target_kind == "text":
        return f"{why}: it reads numbers, never the text {shown}; write a number"
    return None


def check_equals_fit_sensor(doc: Document) -> Iterator[Diagnostic]:
    """`equals:` (of a rule or its `only_when:`) compares with a value the sensor can read:
    a coil is never equal to "on", a float register never to "running"."""
    for index, rule in rules_of(doc):
        places: list[tuple[Any, tuple[str | int, ...]]] = []
        if "equals" in rule:
            places.append((rule.get("sensor"), ("rules", index, "equals")))
        gate = rule.get("only_when")
        if isinstance(gate, dict) and "equals" in gate:
            places.append((gate.get("sensor"), ("rules", index, "only_when", "equals")))
        for sensor_id, path in places:
            kind = kind_of_sensor(doc, sensor_id)
            target = doc.get(*path)
            if path in doc.source.plain_text and str(target).lower() in YAML11_WORDS:
                continue  # `equals: off` is reported once, as the YAML 1.1 trap it is
            problem = _equals_problem(kind, target) if kind is not None else None
            if problem is not None:
                yield doc.at(path, problem)


def check_rate_resolution(doc: Document) -> Iterator[Diagnostic]:
    """A rate between consecutive polls of an integer register moves in steps of the
    scale factor: when one step in one poll is already above the limit, any change at all
    trips the rule (0.1 degC at a 1 s poll is 6 degC/1m)."""
    default_poll = doc.get("defaults", "poll") or "1s"
    for index, rule in rules_of(doc):
        rate = rule.get("rate")
        sensor_id = rule.get("sensor")
        if not isinstance(rate, dict) or not isinstance(sensor_id, str):
            continue
        sensor = doc.get("sensors", sensor_id)
        register = sensor.get("register") if isinstance(sensor, dict) else None
        if not isinstance(register, dict) or register.get("table") not in ("holding", "input"):
            continue  # coils and discrete inputs are true/false: another check's error
        if register.get("type", "uint16") not in INTEGER_TYPES:
            continue
        scale = sensor.get("scale") if isinstance(sensor, dict) else None
        factor = as_number(scale.get("factor", 1.0)) if isinstance(scale, dict) else 1.0
        above = as_number(rate.get("above"))
        connection = sensor.get("connection") if isinstance(sensor, dict) else None
        poll = doc.get("connections", connection, "poll") if isinstance(connection, str) else None
        try:
            poll_ns = parse_duration(poll if poll is not None else default_poll)
            per_ns = parse_duration(rate.get("per", "1m"))
        except ValueError:
            continue  # the model reports a malformed duration
        if factor is None or above is None or poll_ns <= 0 or factor == 0:
            continue
        try:
            # Over a window the slope spans the window, not one poll.
            window_ns = parse_duration(rate["window"]) if rate.get("window") else 0
        except ValueError:
            continue
        poll_ns = max(poll_ns, window_ns)
        step_rate = abs(factor) * per_ns / poll_ns
        if step_rate > above:
            yield doc.at(
                ("rules", index, "rate", "above"),
                f"the smallest change {sensor_id} can make ({fmt(abs(factor))} in one poll of "
                f"{format_duration(poll_ns)}) is already a rate of {fmt(step_rate)} per "
                f"{format_duration(per_ns)}, above {fmt(above)}: every change would trip "
                "this rule (give the rate a `window:`, or raise `above:`)",
                "warning",
            )
