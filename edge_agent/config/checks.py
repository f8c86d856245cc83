"""Checks of a site file that need more than one value: references between sections,
duplicate rule ids, register overlaps, bands, escalation levels and templates.

They read the merged raw data defensively (a value may be missing or of the wrong type:
pydantic reports that), so they run even when the models fail and every problem in the
file is reported in one pass.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Iterable, Iterator
from typing import Any, Final

from pydantic import ValidationError

from edge_agent.alerts import PRIORITY_ORDER
from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.loader import YAML11_FALSE, YAML11_TRUE, Check, Document
from edge_agent.config.messages import describe_value, did_you_mean, suggest
from edge_agent.config.meters import check_meters
from edge_agent.config.models import (
    CONDITION_KEYS,
    TEMPLATE_FIELDS,
    Register,
    RegisterType,
    condition_problem,
)
from edge_agent.config.units import format_duration, format_size, parse_duration, parse_size

MODBUS: Final = ("modbus-tcp", "modbus-rtu")
TEMPLATE_KEYS: Final = ("title", "description")
YAML11_WORDS: Final = YAML11_TRUE | YAML11_FALSE


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


class _KnownNames:
    """The names of each section, sorted once, and "did you mean" within a budget.

    A suggestion compares the unknown name with every known one (difflib, ~1 µs each): a
    site whose 2,000 rules name sensors that are not among its 11,000 would take half a
    minute. So one run of a check spends at most :attr:`BUDGET` comparisons; the unknown
    names after that (and only on such big sites) list the known names instead. A name
    misspelled the same way twice is looked up once."""

    BUDGET: Final = 300_000

    def __init__(self) -> None:
        self._sorted: dict[str, list[str]] = {}
        self._hints: dict[tuple[str, str], str] = {}
        self._spent = 0

    def of(self, section: str, known: dict[str, Any]) -> list[str]:
        """The names in ``section``, sorted."""
        if section not in self._sorted:
            self._sorted[section] = sorted(known)
        return self._sorted[section]

    def hint(self, section: str, name: str, names: list[str]) -> str:
        """``"; did you mean `x`?"``, or ``""`` (none near, or out of budget)."""
        memo = (section, name)
        if memo not in self._hints:
            if self._spent + len(names) > self.BUDGET:
                return ""
            self._spent += len(names)
            self._hints[memo] = did_you_mean(name, names)
        return self._hints[memo]


def _reference(
    doc: Document,
    path: tuple[str | int, ...],
    kind: str,
    section: str,
    known_names: _KnownNames | None = None,
) -> Iterator[Diagnostic]:
    name = doc.get(*path)
    known = doc.get(section)
    if known is None:  # no such section at all: every reference into it is unknown
        known = {}
    if not isinstance(name, str) or not isinstance(known, dict) or name in known:
        return
    lookup = _KnownNames() if known_names is None else known_names
    names = lookup.of(section, known)
    listed = f" (known: {', '.join(names[:12])}{', …' if len(names) > 12 else ''})" if names else ""
    hint = lookup.hint(section, name, names)
    yield doc.at(path, f"unknown {kind} `{name}`{hint or listed}")


def check_references(doc: Document) -> Iterator[Diagnostic]:
    """sensor → connection, rule → sensor and asset, only_when → sensor."""
    names = _KnownNames()
    for sensor_id, _sensor in _items(doc.get("sensors")):
        yield from _reference(
            doc, ("sensors", sensor_id, "connection"), "connection", "connections", names
        )
    for index, rule in _rules(doc):
        yield from _reference(doc, ("rules", index, "sensor"), "sensor", "sensors", names)
        yield from _reference(doc, ("rules", index, "asset"), "asset", "assets", names)
        if isinstance(rule.get("only_when"), dict):
            yield from _reference(
                doc, ("rules", index, "only_when", "sensor"), "sensor", "sensors", names
            )


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
# What a sample of each kind of value looks like (``kinds`` of :func:`template_problems`).
_SAMPLE_OF_KIND: Final[dict[str, Any]] = {
    "number": 97.25,
    "integer": 97,
    "bool": True,
    "text": "text",
}
_KIND_WORDS: Final[dict[str, str]] = {
    "number": "a number",
    "integer": "a whole number",
    "bool": "a bool",
    "text": "text",
}
_INTEGER_TYPES: Final = frozenset(
    {
        RegisterType.INT16,
        RegisterType.UINT16,
        RegisterType.INT32,
        RegisterType.UINT32,
        RegisterType.INT64,
        RegisterType.UINT64,
    }
)


def _unknown_field(name: str, fields: list[str]) -> str:
    """ "did you mean" for a typo; for a field we do not have (``{asset.location}``), the
    fields of that kind there are, rather than a near spelling that means something else."""
    nearest = suggest(name, fields)
    close = nearest is not None and (
        nearest.lower() == name.lower()
        or difflib.SequenceMatcher(None, name.lower(), nearest.lower()).ratio() >= 0.7
    )
    if nearest is not None and close:
        return f"unknown template field {{{name}}}; did you mean {{{nearest}}}?"
    prefix = name.split(".", 1)[0]
    kin = [f"{{{field}}}" for field in fields if field.startswith(f"{prefix}.")]
    if "." in name and kin:
        return f"unknown template field {{{name}}}; the {prefix} fields are {', '.join(kin)}"
    return f"unknown template field {{{name}}}; fields: {', '.join(fields)}"


def template_problems(template: str, kinds: dict[str, str] | None = None) -> Iterable[str]:
    """What is wrong with one work-order template (empty when it renders).

    ``kinds`` says what the rule's ``value``, ``peak`` and ``limit`` hold (``"number"``,
    ``"integer"``, ``"bool"`` or ``"text"``, with the reason after a ``:`` for the
    message, e.g. ``"bool:sensor `p101_running` is a coil"``); a number by default."""
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
            yield _unknown_field(name, fields)
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
        kind, _, why = (kinds or {}).get(name, "").partition(":")
        if kind == "bool" and spec:
            # format(True, ".1f") is "1.0" and format(True, ">5") is "    1": any spec
            # turns True/False into a number the reader of the work order cannot place.
            yield (
                f"{{{name}:{spec}}}: {name} is a bool here ({why}); with a format spec "
                f"True prints as {format(True, spec).strip()!r}: write {{{name}}} "
                "(True or False)"
            )
            continue
        sample = _SAMPLE_OF_KIND[kind] if kind else _SAMPLE_FOR_FIELD.get(name, "text")
        try:
            format(sample, spec or "")
        except ValueError:
            if kind:
                what = f"{_KIND_WORDS[kind]} here ({why})"
            else:
                what = "a number" if name in _SAMPLE_FOR_FIELD else "text"
            yield f"{{{name}:{spec}}}: format spec `{spec}` does not fit {name}, which is {what}"


def _sensor_kind(doc: Document, sensor_id: Any) -> str | None:
    """``"bool:<why>"``, ``"text:<why>"`` or ``"number:<why>"`` for a Modbus sensor whose
    register is valid; ``None`` when unknown (OPC UA types are only known at run time)."""
    if not isinstance(sensor_id, str):
        return None
    register = _register(doc.get("sensors", sensor_id, "register"))
    if register is None:
        return None
    kind = register.value_type
    if kind is RegisterType.BOOL:
        what = register.table.value if register.table.is_bits else "type bool"
        return f"bool:sensor `{sensor_id}` is a {what}"
    if kind is RegisterType.STRING:
        return f"text:sensor `{sensor_id}` is a string register"
    if kind in _INTEGER_TYPES and doc.get("sensors", sensor_id, "scale") is None:
        # Unscaled integers stay integers: `{value:x}` (hex of a status word) is fine.
        return f"integer:sensor `{sensor_id}` is {kind.value}"
    return f"number:sensor `{sensor_id}` is {kind.value}"


def _value_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return None


def check_templates(doc: Document) -> Iterator[Diagnostic]:
    """Work-order templates use only the known fields, with format specs that fit what the
    rule's sensor holds (a bool coil or a string register is not a number)."""
    for index, rule in _rules(doc):
        work_order = rule.get("work_order")
        if not isinstance(work_order, dict):
            continue
        kinds: dict[str, str] = {}
        sensor_kind = _sensor_kind(doc, rule.get("sensor"))
        if sensor_kind is not None:
            kinds["value"] = kinds["peak"] = sensor_kind
        if rule.get("equals") is not None:
            # An `equals:` rule reports its target as the limit.
            target_kind = _value_kind(rule.get("equals"))
            if target_kind is not None:
                kinds["limit"] = f"{target_kind}:the rule's `equals:` target"
        for key in TEMPLATE_KEYS:
            template = work_order.get(key)
            if isinstance(template, str):
                for problem in template_problems(template, kinds):
                    yield doc.at(("rules", index, "work_order", key), problem)


def _equals_problem(sensor_kind: str, target: Any) -> str | None:
    """Why ``equals: target`` can never match a sensor of ``sensor_kind`` (or ``None``)."""
    kind, _, why = sensor_kind.partition(":")
    kind = "number" if kind == "integer" else kind
    target_kind = _value_kind(target)
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
    for index, rule in _rules(doc):
        places: list[tuple[Any, tuple[str | int, ...]]] = []
        if "equals" in rule:
            places.append((rule.get("sensor"), ("rules", index, "equals")))
        gate = rule.get("only_when")
        if isinstance(gate, dict) and "equals" in gate:
            places.append((gate.get("sensor"), ("rules", index, "only_when", "equals")))
        for sensor_id, path in places:
            kind = _sensor_kind(doc, sensor_id)
            target = doc.get(*path)
            if path in doc.source.plain_text and str(target).lower() in YAML11_WORDS:
                continue  # `equals: off` is reported once, as the YAML 1.1 trap it is
            problem = _equals_problem(kind, target) if kind is not None else None
            if problem is not None:
                yield doc.at(path, problem)


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
        # 0s is an error of its own (check_positive_durations): say it once.
        if stale_ns is not None and 0 < stale_ns <= poll_ns:
            yield doc.at(
                ("sensors", sensor_id, "stale_after"),
                f"stale_after {format_duration(stale_ns)} is not longer than the poll "
                f"interval {format_duration(poll_ns)}: the sensor would go stale between polls",
                "warning",
            )


def check_rate_resolution(doc: Document) -> Iterator[Diagnostic]:
    """A rate between consecutive polls of an integer register moves in steps of the
    scale factor: when one step in one poll is already above the limit, any change at all
    trips the rule (0.1 degC at a 1 s poll is 6 degC/1m)."""
    default_poll = doc.get("defaults", "poll") or "1s"
    for index, rule in _rules(doc):
        rate = rule.get("rate")
        sensor_id = rule.get("sensor")
        if not isinstance(rate, dict) or not isinstance(sensor_id, str):
            continue
        sensor = doc.get("sensors", sensor_id)
        register = sensor.get("register") if isinstance(sensor, dict) else None
        if not isinstance(register, dict) or register.get("table") not in ("holding", "input"):
            continue  # coils and discrete inputs are true/false: another check's error
        if register.get("type", "uint16") not in _INTEGER_TYPES:
            continue
        scale = sensor.get("scale") if isinstance(sensor, dict) else None
        factor = _number(scale.get("factor", 1.0)) if isinstance(scale, dict) else 1.0
        above = _number(rate.get("above"))
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
                f"the smallest change {sensor_id} can make ({_fmt(abs(factor))} in one poll of "
                f"{format_duration(poll_ns)}) is already a rate of {_fmt(step_rate)} per "
                f"{format_duration(per_ns)}, above {_fmt(above)}: every change would trip "
                "this rule (give the rate a `window:`, or raise `above:`)",
                "warning",
            )


_HOST_WITH_PORT: Final = re.compile(r"^([^:\s]+):(\d+)$")


def _host_problem(host: str, port_key: str) -> str | None:
    """Why ``host`` is not a bare host name or address (``None`` when it is one)."""
    if "://" in host:
        scheme, _, rest = host.partition("://")
        bare = rest.split("/")[0].rsplit(":", 1)[0] if rest else "10.0.7.21"
        return (
            f"`host` is a name or an address, not a URL: write {bare or '10.0.7.21'} "
            f"(without {scheme}://; the port goes in `{port_key}:`)"
        )
    with_port = _HOST_WITH_PORT.match(host)
    if with_port:
        return (
            f"`host` holds no port: write host: {with_port.group(1)} and "
            f"{port_key}: {with_port.group(2)}"
        )
    if any(char.isspace() for char in host) or not host.strip():
        return f"`host` {describe_value(host)} is not a host name or address"
    return None


def check_hosts(doc: Document) -> Iterator[Diagnostic]:
    """`host: 10.0.7.21:502` or `host: tcp://plc`: the port and the scheme have keys of
    their own, and a host with them never resolves."""
    places: list[tuple[str | int, ...]] = [
        ("connections", name, "host")
        for name, connection in _items(doc.get("connections"))
        if connection.get("protocol") == "modbus-tcp"
    ]
    places.append(("forwarding", "mqtt", "host"))
    for path in places:
        host = doc.get(*path)
        if isinstance(host, str):
            problem = _host_problem(host, "port")
            if problem is not None:
                yield doc.at(path, problem)


def _positive_duration_paths(doc: Document) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every duration that must be longer than zero, with what a zero would do."""
    spin = "it would poll without pause"
    yield ("defaults", "poll"), spin
    yield ("defaults", "stale_after"), "every reading would be stale at once"
    for name, connection in _items(doc.get("connections")):
        here = ("connections", name)
        yield (*here, "poll"), spin
        yield (*here, "timeout"), "no request could ever be answered in time"
        if connection.get("protocol") == "opcua":
            yield (*here, "watchdog"), "every subscription would be rebuilt at once"
    for sensor_id, _sensor in _items(doc.get("sensors")):
        yield ("sensors", sensor_id, "stale_after"), "every reading would be stale at once"
    for index, _rule in _rules(doc):
        yield ("rules", index, "stale_after"), "every reading would be stale at once"
        yield ("rules", index, "rate", "per"), "a change per no time at all cannot be computed"
        yield ("rules", index, "flatline", "for"), "every second reading would be a flatline"
    yield ("forwarding", "maintainx", "timeout"), "no request could ever be answered in time"


def _backoff_paths(doc: Document) -> Iterator[tuple[str | int, ...]]:
    for name, _connection in _items(doc.get("connections")):
        yield ("connections", name, "backoff")
    yield ("forwarding", "mqtt", "backoff")
    yield ("forwarding", "maintainx", "backoff")


def _duration_at(doc: Document, path: tuple[str | int, ...]) -> int | None:
    raw = doc.get(*path)
    if raw is None:
        return None
    try:
        return parse_duration(raw)
    except ValueError:
        return None  # the model reports a malformed duration


def check_positive_durations(doc: Document) -> Iterator[Diagnostic]:
    """`poll: 0s`, `timeout: 0s`, `backoff: {initial: 0s}`: valid durations that would make
    the agent spin, time out at once or reconnect without pause."""
    for path, consequence in _positive_duration_paths(doc):
        if _duration_at(doc, path) == 0:
            yield doc.at(path, f"`{path[-1]}` must be longer than 0s: {consequence}")
    for path in _backoff_paths(doc):
        initial = _duration_at(doc, (*path, "initial"))
        largest = _duration_at(doc, (*path, "max"))
        if initial == 0:
            yield doc.at(
                (*path, "initial"),
                "`initial` must be longer than 0s: reconnects would follow each other "
                "without pause (write e.g. 500ms)",
            )
        elif initial is not None and largest is not None and largest < initial:
            yield doc.at(
                (*path, "max"),
                f"backoff max {format_duration(largest)} is shorter than initial "
                f"{format_duration(initial)}",
            )


_HOUR: Final = parse_duration("1h")
_DAY: Final = parse_duration("1d")
# MQTT carries the keep-alive in a 16-bit count of seconds.
_MQTT_KEEPALIVE_MAX: Final = parse_duration("65535s")


def _duration_limits(doc: Document) -> Iterator[tuple[tuple[str | int, ...], int, str]]:
    """Every duration with a ceiling of its own: ``(path, longest, why)``. Each ceiling is
    far above what a plant uses; a value past it is a typo (`600m` for `600s`, an extra
    zero) that would leave a sensor unwatched or an alarm unsent for days. The table is in
    docs/configuration.md; every duration is also at most a year (units.MAX_DURATION_NS)."""
    unread = "a sensor read less often than that is not monitored"
    late = "a peer that slow is down; say so sooner"
    backoff = "an outage would be noticed as over that much later"
    yield ("defaults", "poll"), _HOUR, unread
    yield ("defaults", "stale_after"), 7 * _DAY, "a dead sensor would go unnoticed for a week"
    yield ("defaults", "chattering", "window"), _DAY, "it counts activations, not a history"
    yield ("defaults", "flood", "window"), _DAY, "it counts work orders, not a history"
    for name, connection in _items(doc.get("connections")):
        here = ("connections", name)
        yield (*here, "poll"), _HOUR, unread
        yield (*here, "timeout"), 5 * parse_duration("1m"), late
        yield (*here, "request_delay"), parse_duration("10s"), "it is paid before every request"
        if connection.get("protocol") == "opcua":
            yield (*here, "sampling_interval"), _HOUR, unread
            yield (*here, "watchdog"), _HOUR, "a silent subscription would go unnoticed"
    for path in _backoff_paths(doc):
        yield (*path, "initial"), _HOUR, backoff
        yield (*path, "max"), _HOUR, backoff
    for sensor_id, _sensor in _items(doc.get("sensors")):
        yield ("sensors", sensor_id, "stale_after"), 7 * _DAY, "a dead sensor would go unnoticed"
    for index, _rule in _rules(doc):
        rule_at: tuple[str | int, ...] = ("rules", index)
        yield (*rule_at, "stale_after"), 7 * _DAY, "a dead sensor would go unnoticed"
        yield (*rule_at, "on_delay"), _DAY, "an alarm would be held that long before it is raised"
        yield (*rule_at, "off_delay"), _DAY, "an alarm would be held that long after it cleared"
        yield (*rule_at, "cooldown"), 30 * _DAY, "a recurring fault would go unreported for a month"
        yield (*rule_at, "chattering", "window"), _DAY, "it counts activations, not a history"
        yield (*rule_at, "rate", "per"), _DAY, "a rate is a change over minutes or hours"
        yield (*rule_at, "flatline", "for"), 30 * _DAY, "a frozen sensor would go unnoticed"
    yield ("forwarding", "mqtt", "keepalive"), _MQTT_KEEPALIVE_MAX, "MQTT counts it in 16 bits"
    yield ("forwarding", "maintainx", "timeout"), 5 * parse_duration("1m"), late


def check_duration_limits(doc: Document) -> Iterator[Diagnostic]:
    """`poll: 600m`, `on_delay: 30d`, `cooldown: 365d`: valid durations that would leave a
    plant unwatched. Each has a ceiling far above what is ever meant."""
    for path, longest, why in _duration_limits(doc):
        value = _duration_at(doc, path)
        if value is not None and value > longest:
            yield doc.at(
                path,
                f"`{path[-1]}` {format_duration(value)} is longer than "
                f"{format_duration(longest)}, the most it may be: {why}",
            )


_SHORTEST_POLL: Final = parse_duration("10ms")


def check_poll_floor(doc: Document) -> Iterator[Diagnostic]:
    """`poll: 0.000001s` is valid as a duration but polls a PLC thousands of times a second
    (found in review: 2,000 Modbus requests a second and half a core, on one sensor)."""
    paths: list[tuple[str | int, ...]] = [("defaults", "poll")]
    paths += [("connections", name, "poll") for name, _ in _items(doc.get("connections"))]
    for path in paths:
        value = _duration_at(doc, path)
        # 0s has its own message (a loop without pause).
        if value is not None and 0 < value < _SHORTEST_POLL:
            yield doc.at(
                path,
                f"`poll` {format_duration(value)} is shorter than "
                f"{format_duration(_SHORTEST_POLL)}: the device would be asked thousands of "
                "times a second",
            )


# The outbox keeps alarms while the hub or MaintainX is unreachable; below this it could
# not hold even a short outage's worth (an alert is ~1 KB on disk).
MIN_STORAGE_BYTES: Final = 1000
"""Below this the outbox cannot hold one alert: every alarm would be refused (an error)."""
SMALL_STORAGE_BYTES: Final = 1000**2
"""Below this it holds only minutes of a busy site's alarms (a warning: tests and very small
gateways may mean it)."""


def check_storage_size(doc: Document) -> Iterator[Diagnostic]:
    """`storage.max_bytes: 0B` leaves the outbox no room: every alarm would be refused."""
    raw = doc.get("storage", "max_bytes")
    if raw is None:
        return
    try:
        size = parse_size(raw)
    except ValueError:
        return  # the model reports a malformed size
    if size < MIN_STORAGE_BYTES:
        yield doc.at(
            ("storage", "max_bytes"),
            f"`max_bytes` {format_size(size)} is less than {format_size(MIN_STORAGE_BYTES)}: "
            "the outbox could not hold a single alarm (write e.g. 256MB)",
        )
    elif size < SMALL_STORAGE_BYTES:
        yield doc.at(
            ("storage", "max_bytes"),
            f"`max_bytes` {format_size(size)} is less than {format_size(SMALL_STORAGE_BYTES)}: "
            "the outbox holds only a short outage's alarms (write e.g. 256MB)",
            "warning",
        )


def check_rtu_broadcast(doc: Document) -> Iterator[Diagnostic]:
    """Unit id 0 on a serial bus is the broadcast address: devices act on a broadcast
    write but never answer, so every read of it would time out. (Modbus TCP devices often
    answer unit 0 for themselves, so it stays allowed there.)"""
    serial: set[str] = set()
    for name, connection in _items(doc.get("connections")):
        protocol = connection.get("protocol")
        if protocol == "modbus-rtu" or (
            protocol == "modbus-tcp" and connection.get("framer") == "rtu"
        ):
            serial.add(name)
            unit = connection.get("unit_id")
            if isinstance(unit, int) and not isinstance(unit, bool) and unit == 0:
                yield doc.at(("connections", name, "unit_id"), _BROADCAST)
    for sensor_id, sensor in _items(doc.get("sensors")):
        unit = sensor.get("unit_id")
        via = sensor.get("connection")
        if not isinstance(via, str) or via not in serial or isinstance(unit, bool):
            continue
        if unit == 0:
            yield doc.at(("sensors", sensor_id, "unit_id"), _BROADCAST)
        elif isinstance(unit, int) and 247 < unit <= 255:
            yield doc.at(
                ("sensors", sensor_id, "unit_id"),
                f"unit_id {unit} is reserved on a serial bus; device addresses are 1–247",
            )


def check_direct_asset_links(doc: Document) -> Iterator[Diagnostic]:
    """In direct mode the agent itself files the work order: a rule whose asset has no
    ``maintainx_id`` makes work orders that MaintainX links to no asset (no history, no
    downtime on the asset). Allowed, since some sites file by location, but said."""
    forwarding = doc.get("forwarding")
    if not isinstance(forwarding, dict) or forwarding.get("mode") != "maintainx":
        return
    assets = doc.get("assets")
    if not isinstance(assets, dict):
        return
    warned: set[str] = set()
    for index, rule in _rules(doc):
        asset_id = rule.get("asset")
        asset = assets.get(asset_id) if isinstance(asset_id, str) else None
        if not isinstance(asset, dict) or asset.get("maintainx_id") is not None:
            continue
        if asset_id in warned:
            continue
        warned.add(str(asset_id))
        yield doc.at(
            ("rules", index, "asset"),
            f"asset `{asset_id}` has no `maintainx_id`: its work orders are linked to no asset "
            "in MaintainX (add `maintainx_id:` to the asset)",
            "warning",
        )


_BROADCAST: Final = (
    "unit_id 0 is the broadcast address on a serial bus: no device answers a read sent "
    "to it; use the device's address (1–247)"
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
    check_equals_fit_sensor,
    check_stale_vs_poll,
    check_hosts,
    check_positive_durations,
    check_duration_limits,
    check_poll_floor,
    check_storage_size,
    check_rtu_broadcast,
    check_direct_asset_links,
    check_rate_resolution,
    check_meters,
)
"""Every check of a site file, in the order they run."""
