"""Checks of a site file that need more than one value: references between sections,
duplicate rule ids, register overlaps, bands, escalation levels and templates.

They read the merged raw data defensively (a value may be missing or of the wrong type:
pydantic reports that), so they run even when the models fail and every problem in the
file is reported in one pass.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator
from typing import Any, Final

from pydantic import ValidationError

from edge_agent.alerts import PRIORITY_ORDER
from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.loader import Check, Document
from edge_agent.config.messages import did_you_mean, suggest
from edge_agent.config.models import (
    CONDITION_KEYS,
    TEMPLATE_FIELDS,
    Register,
    RegisterType,
    condition_problem,
)
from edge_agent.config.units import format_duration, parse_duration

MODBUS: Final = ("modbus-tcp", "modbus-rtu")
TEMPLATE_KEYS: Final = ("title", "description")


def _items(value: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict):
                yield key, item


def _rules(doc: Document) -> Iterator[tuple[int, dict[str, Any]]]:
    rules = doc.get("rules")
    if isinstance(rules, list):
        for index, rule in enumerate(rules):
            if isinstance(rule, dict):
                yield index, rule


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _fmt(value: float) -> str:
    return f"{value:g}"


def _register(raw: Any) -> Register | None:
    try:
        return Register.model_validate(raw)
    except ValidationError:
        return None


def _protocol(doc: Document, connection: Any) -> str | None:
    if not isinstance(connection, str):
        return None
    protocol = doc.get("connections", connection, "protocol")
    return protocol if isinstance(protocol, str) else None


def _reference(
    doc: Document, path: tuple[str | int, ...], kind: str, section: str
) -> Iterator[Diagnostic]:
    name = doc.get(*path)
    known = doc.get(section)
    if known is None:  # no such section at all: every reference into it is unknown
        known = {}
    if not isinstance(name, str) or not isinstance(known, dict) or name in known:
        return
    names = sorted(known)
    listed = f" (known: {', '.join(names[:12])}{', …' if len(names) > 12 else ''})" if names else ""
    hint = did_you_mean(name, names)
    yield doc.at(path, f"unknown {kind} `{name}`{hint or listed}")


def check_references(doc: Document) -> Iterator[Diagnostic]:
    """sensor → connection, rule → sensor and asset, only_when → sensor."""
    for sensor_id, _sensor in _items(doc.get("sensors")):
        yield from _reference(
            doc, ("sensors", sensor_id, "connection"), "connection", "connections"
        )
    for index, rule in _rules(doc):
        yield from _reference(doc, ("rules", index, "sensor"), "sensor", "sensors")
        yield from _reference(doc, ("rules", index, "asset"), "asset", "assets")
        if isinstance(rule.get("only_when"), dict):
            yield from _reference(doc, ("rules", index, "only_when", "sensor"), "sensor", "sensors")


def check_rule_ids(doc: Document) -> Iterator[Diagnostic]:
    """Rule ids are unique: they name the alarm in every event and work order."""
    first_at: dict[str, int] = {}
    for index, rule in _rules(doc):
        rule_id = rule.get("id")
        if not isinstance(rule_id, str):
            continue
        if rule_id in first_at:
            earlier = ("rules", first_at[rule_id], "id")
            yield doc.at(
                ("rules", index, "id"),
                f"duplicate rule id `{rule_id}` (already used by the rule at {doc.where(earlier)})",
            )
        else:
            first_at[rule_id] = index


def check_address_kinds(doc: Document) -> Iterator[Diagnostic]:
    """A sensor is addressed the way its connection speaks: `node:` for OPC UA,
    `register:` for Modbus."""
    for sensor_id, sensor in _items(doc.get("sensors")):
        connection = sensor.get("connection")
        protocol = _protocol(doc, connection)
        if protocol == "opcua":
            if "register" in sensor:
                yield doc.at(
                    ("sensors", sensor_id, "register"),
                    f"connection `{connection}` is OPC UA: address this sensor with `node:`, "
                    "not `register:`",
                    key=True,
                )
            if "unit_id" in sensor:
                yield doc.at(
                    ("sensors", sensor_id, "unit_id"),
                    f"`unit_id` is a Modbus setting; connection `{connection}` is OPC UA",
                    key=True,
                )
        elif protocol in MODBUS and "node" in sensor:
            yield doc.at(
                ("sensors", sensor_id, "node"),
                f"connection `{connection}` is Modbus: address this sensor with `register:`, "
                "not `node:`",
                key=True,
            )


def check_register_overlaps(doc: Document) -> Iterator[Diagnostic]:
    """Two sensors reading the same registers as different types is almost always a typo
    in an address (a warning: a status word read whole and as bits is legitimate)."""
    spans: dict[tuple[str, int, str], list[tuple[int, int, str, Register]]] = {}
    for sensor_id, sensor in _items(doc.get("sensors")):
        connection = sensor.get("connection")
        if _protocol(doc, connection) not in MODBUS:
            continue
        register = _register(sensor.get("register"))
        if register is None or register.bit is not None:
            continue
        unit = sensor.get("unit_id", doc.get("connections", str(connection), "unit_id"))
        unit_id = unit if isinstance(unit, int) else 1
        key = (str(connection), unit_id, register.table.value)
        end = register.address + register.count - 1
        spans.setdefault(key, []).append((register.address, end, sensor_id, register))
    for (connection, unit_id, table), entries in spans.items():
        entries.sort(key=lambda entry: (entry[0], entry[1]))
        active: list[tuple[int, int, str, Register]] = []  # spans that reach this start
        for start, end, sensor_id, register in entries:
            active = [entry for entry in active if entry[1] >= start]
            earlier = list(active)
            active.append((start, end, sensor_id, register))
            for other_start, other_end, other_id, other in earlier:
                if other.value_type == register.value_type:
                    continue
                yield doc.at(
                    ("sensors", sensor_id, "register", "address"),
                    f"{table} {start}–{end} overlaps sensor `{other_id}` ({table} "
                    f"{other_start}–{other_end}, unit {unit_id} on `{connection}`), read there as "
                    f"{other.value_type.value} but here as {register.value_type.value}",
                    "warning",
                )


MODICON_RANGES: Final = {"holding": (40001, 49999, 40001), "input": (30001, 39999, 30001)}


def check_modicon_addresses(doc: Document) -> Iterator[Diagnostic]:
    """`address: 40021` on a holding register is usually 4x register 21 written the
    1-based way (protocol address 20); a warning, since some devices really map that high."""
    for sensor_id, sensor in _items(doc.get("sensors")):
        register = _register(sensor.get("register"))
        if register is None or register.table.value not in MODICON_RANGES:
            continue
        low, high, base = MODICON_RANGES[register.table.value]
        if low <= register.address <= high:
            number = register.address - base + 1
            yield doc.at(
                ("sensors", sensor_id, "register", "address"),
                f"address {register.address} looks like 1-based Modicon numbering "
                f"({register.table.value} register {number}); the 0-based protocol address "
                f"is {number - 1}. Ignore this if the device's map really uses "
                f"{register.address}",
                "warning",
            )


def _sensor_is_bool(doc: Document, sensor_id: Any) -> str | None:
    """How we know a sensor is boolean (``"coil"``, ``"type bool"``), or ``None``."""
    if not isinstance(sensor_id, str):
        return None
    register = _register(doc.get("sensors", sensor_id, "register"))
    if register is None or register.value_type is not RegisterType.BOOL:
        return None
    return register.table.value if register.table.is_bits else "type bool"


def check_conditions_fit_sensor(doc: Document) -> Iterator[Diagnostic]:
    """Number comparisons (`high`, `low`, `rate`, `flatline`) on a bool sensor never trip
    as meant; `equals` is the condition for status bits."""
    for index, rule in _rules(doc):
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
    for index, rule in _rules(doc):
        problem = condition_problem([key for key in CONDITION_KEYS if rule.get(key) is not None])
        if problem:
            yield doc.at(("rules", index), problem)


def check_bands(doc: Document) -> Iterator[Diagnostic]:
    """Deadbands that reach into the other alarm, and deadbands wider than the limit."""
    for index, rule in _rules(doc):
        high, low = rule.get("high"), rule.get("low")
        high_limit = _number(high.get("limit")) if isinstance(high, dict) else None
        low_limit = _number(low.get("limit")) if isinstance(low, dict) else None
        high_band = (_number(high.get("deadband")) or 0.0) if isinstance(high, dict) else 0.0
        low_band = (_number(low.get("deadband")) or 0.0) if isinstance(low, dict) else 0.0
        here = ("rules", index)
        if high_limit is not None and low_limit is not None:
            if high_limit <= low_limit:
                yield doc.at(
                    (*here, "high", "limit"),
                    f"high.limit {_fmt(high_limit)} must be above low.limit {_fmt(low_limit)}",
                )
                continue
            if high_limit - high_band <= low_limit:
                yield doc.at(
                    (*here, "high", "deadband"),
                    f"deadband {_fmt(high_band)} is wider than the gap to low.limit "
                    f"({_fmt(high_limit - low_limit)}): the high alarm could only clear where "
                    "the low alarm trips",
                )
            if low_limit + low_band >= high_limit:
                yield doc.at(
                    (*here, "low", "deadband"),
                    f"deadband {_fmt(low_band)} is wider than the gap to high.limit "
                    f"({_fmt(high_limit - low_limit)}): the low alarm could only clear where "
                    "the high alarm trips",
                )
            continue
        for name, limit, band in (("high", high_limit, high_band), ("low", low_limit, low_band)):
            if limit is not None and limit != 0 and band >= abs(limit):
                clear = limit - band if name == "high" else limit + band
                yield doc.at(
                    (*here, name, "deadband"),
                    f"deadband {_fmt(band)} is as wide as the limit {_fmt(limit)} itself: the "
                    f"alarm would clear only at {_fmt(clear)}; a deadband is a few percent of "
                    "the range",
                    "warning",
                )


def check_escalation(doc: Document) -> Iterator[Diagnostic]:
    """Escalation levels rise with priority: `above` levels increase, `below` levels
    decrease; each one escalates past the rule's own priority."""
    for index, rule in _rules(doc):
        levels = rule.get("escalate")
        if not isinstance(levels, list):
            continue
        base = PRIORITY_ORDER.get(str(rule.get("priority", "MEDIUM")))
        high = rule.get("high")
        low = rule.get("low")
        high_limit = _number(high.get("limit")) if isinstance(high, dict) else None
        low_limit = _number(low.get("limit")) if isinstance(low, dict) else None
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
                value = _number(level.get(direction))
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
                            f"{_fmt(value)} vs {other_priority} at {direction} "
                            f"{_fmt(other_value)}; a higher priority needs a {word} level",
                        )
                seen.append((direction, value, rank, priority))
                if direction == "above" and high_limit is not None and value <= high_limit:
                    yield doc.at(
                        (*path, "above"),
                        f"escalation above {_fmt(value)} is not above high.limit "
                        f"{_fmt(high_limit)}: it escalates the moment the alarm activates",
                        "warning",
                    )
                if direction == "below" and low_limit is not None and value >= low_limit:
                    yield doc.at(
                        (*path, "below"),
                        f"escalation below {_fmt(value)} is not below low.limit "
                        f"{_fmt(low_limit)}: it escalates the moment the alarm activates",
                        "warning",
                    )


_SAMPLE_FOR_FIELD: Final[dict[str, Any]] = {
    "value": 97.25,
    "peak": 97.5,
    "limit": 85.0,
    "priority": "HIGH",
}


def template_problems(template: str) -> Iterable[str]:
    """What is wrong with one work-order template (empty when it renders)."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        yield f"{exc}; write {{{{ and }}}} for literal braces"
        return
    fields = sorted(TEMPLATE_FIELDS)
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS:
            nearest = suggest(name, fields)
            if nearest:
                yield f"unknown template field {{{name}}}; did you mean {{{nearest}}}?"
            else:
                yield f"unknown template field {{{name}}}; fields: {', '.join(fields)}"
            continue
        if conversion:
            yield f"{{{name}!{conversion}}}: conversions are not supported, use a format spec"
            continue
        if spec and "{" in spec:
            yield f"{{{name}:{spec}}}: nested fields in a format spec are not supported"
            continue
        if re.search(r"\d{4,}", spec or ""):
            yield f"{{{name}:{spec}}}: a width or precision above 999 is not supported"
            continue
        try:
            format(_SAMPLE_FOR_FIELD.get(name, "text"), spec or "")
        except ValueError:
            kind = "a number" if name in _SAMPLE_FOR_FIELD else "text"
            yield f"{{{name}:{spec}}}: format spec `{spec}` does not fit {name}, which is {kind}"


def check_templates(doc: Document) -> Iterator[Diagnostic]:
    """Work-order templates use only the known fields, with format specs that fit."""
    for index, rule in _rules(doc):
        work_order = rule.get("work_order")
        if not isinstance(work_order, dict):
            continue
        for key in TEMPLATE_KEYS:
            template = work_order.get(key)
            if isinstance(template, str):
                for problem in template_problems(template):
                    yield doc.at(("rules", index, "work_order", key), problem)


def check_stale_vs_poll(doc: Document) -> Iterator[Diagnostic]:
    """A sensor that can go stale between two polls raises false stale alarms."""
    default_poll = doc.get("defaults", "poll") or "1s"
    for sensor_id, sensor in _items(doc.get("sensors")):
        stale = sensor.get("stale_after")
        connection = sensor.get("connection")
        poll = doc.get("connections", connection, "poll") if isinstance(connection, str) else None
        try:
            stale_ns = parse_duration(stale) if stale is not None else None
            poll_ns = parse_duration(poll if poll is not None else default_poll)
        except ValueError:
            continue  # the model reports a malformed duration
        if stale_ns is not None and stale_ns <= poll_ns:
            yield doc.at(
                ("sensors", sensor_id, "stale_after"),
                f"stale_after {format_duration(stale_ns)} is not longer than the poll "
                f"interval {format_duration(poll_ns)}: the sensor would go stale between polls",
                "warning",
            )


SITE_CHECKS: Final[tuple[Check, ...]] = (
    check_references,
    check_rule_ids,
    check_rule_conditions,
    check_address_kinds,
    check_register_overlaps,
    check_modicon_addresses,
    check_conditions_fit_sensor,
    check_bands,
    check_escalation,
    check_templates,
    check_stale_vs_poll,
)
"""Every check of a site file, in the order they run."""
