"""Meters (the ``meters:`` section) against each other and the rest of the site file."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.document import Document
from edge_agent.config.messages import did_you_mean
from edge_agent.config.models.meters import (
    DEFAULT_POLL_NS,
    INTEGER_REGISTER_BITS,
    KIND_OPTIONS,
    MeterKind,
)
from edge_agent.config.units import format_duration, parse_duration
from edge_agent.wire.plant import MAX_VALUE


def _meters(doc: Document) -> Iterator[tuple[str, dict[str, Any]]]:
    meters = doc.get("meters")
    if isinstance(meters, dict):
        for name, meter in meters.items():
            if isinstance(meter, dict):
                yield str(name), meter


def _unknown(
    doc: Document, path: tuple[str | int, ...], kind: str, section: str
) -> Iterator[Diagnostic]:
    name = doc.get(*path)
    known = doc.get(section)
    known = known if isinstance(known, dict) else {}
    if isinstance(name, str) and name not in known:
        names = sorted(str(k) for k in known)
        hint = did_you_mean(name, names)
        listed = f" (known: {', '.join(names[:12])}{', …' if len(names) > 12 else ''})"
        yield doc.at(path, f"unknown {kind} `{name}`{hint or (listed if names else '')}")


def _register_type(doc: Document, sensor_id: str) -> str | None:
    """A Modbus sensor's value type (``uint32``...), None for OPC UA or an unreadable one."""
    register = doc.get("sensors", sensor_id, "register")
    if not isinstance(register, dict):
        return None
    kind = register.get("type")
    if isinstance(kind, str):
        return kind
    return "bool" if register.get("table") in ("coil", "discrete") else "uint16"


def _kind_of(meter: dict[str, Any]) -> MeterKind | None:
    try:
        return MeterKind(str(meter.get("kind")))
    except ValueError:
        return None  # the model reports it


def check_meters(doc: Document) -> Iterator[Diagnostic]:
    """References, options that fit the kind, counters on whole-number registers, PM
    intervals in the meter's unit, limits that make a band, one MaintainX meter per meter."""
    claimed: dict[int, str] = {}
    named: dict[tuple[object, str], str] = {}
    for name, meter in _meters(doc):
        here: tuple[str | int, ...] = ("meters", name)
        yield from _unknown(doc, (*here, "asset"), "asset", "assets")
        yield from _unknown(doc, (*here, "sensor"), "sensor", "sensors")
        kind = _kind_of(meter)
        if kind is None:
            continue
        for option, kinds in KIND_OPTIONS.items():
            if option in meter and kind not in kinds:
                fits = " or ".join(k.value for k in kinds)
                yield doc.at(
                    (*here, option),
                    f"`{option}` is for {fits} meters, not {kind.value}",
                    key=True,
                )
        yield from _check_sensor_fits(doc, here, meter, kind)
        yield from _check_pm(doc, here, meter, kind)
        yield from _check_limits(doc, here, meter)
        yield from _check_gap(doc, here, meter)
        meter_id = meter.get("maintainx_meter_id")
        asset_id = meter.get("asset")
        asset = doc.get("assets", asset_id) if isinstance(asset_id, str) else None
        if meter_id is None and isinstance(asset, dict) and asset.get("maintainx_id") is None:
            yield doc.at(
                (*here, "asset"),
                f"asset `{asset_id}` has no `maintainx_id`: the meter would be created "
                "on no asset in MaintainX, and its PM work orders on none",
                "warning",
            )
        if meter_id is None:
            # MaintainX is asked for a meter of this name on the asset before one is made:
            # two meters of one name on one asset would become one.
            shown = meter.get("name") if isinstance(meter.get("name"), str) else name
            other = named.setdefault((asset_id, str(shown)), name)
            if other != name:
                yield doc.at(
                    (*here, "name") if "name" in meter else here,
                    f"meter `{other}` has the MaintainX name `{shown}` on asset `{asset_id}` "
                    "too: a meter is found by its name, so both would send into one",
                )
        if isinstance(meter_id, int) and not isinstance(meter_id, bool):
            if meter_id in claimed:
                yield doc.at(
                    (*here, "maintainx_meter_id"),
                    f"MaintainX meter {meter_id} is already meter `{claimed[meter_id]}`'s: "
                    "two meters would send readings into one",
                )
            claimed.setdefault(meter_id, name)


def _check_sensor_fits(
    doc: Document, here: tuple[str | int, ...], meter: dict[str, Any], kind: MeterKind
) -> Iterator[Diagnostic]:
    sensor_id = meter.get("sensor")
    if not isinstance(sensor_id, str) or not isinstance(doc.get("sensors", sensor_id), dict):
        return
    value_type = _register_type(doc, sensor_id)
    if value_type == "string":
        yield doc.at((*here, "sensor"), f"sensor `{sensor_id}` holds text: a meter needs a number")
        return
    if kind is not MeterKind.COUNTER or value_type is None:
        return
    width = INTEGER_REGISTER_BITS.get(value_type)
    if width is None:
        yield doc.at(
            (*here, "sensor"),
            f"a counter counts whole numbers but sensor `{sensor_id}` is {value_type}: "
            "use an integer register, or a gauge",
        )
        return
    bits = meter.get("bits")
    if isinstance(bits, int) and not isinstance(bits, bool) and bits != width:
        yield doc.at(
            (*here, "bits"),
            f"sensor `{sensor_id}` is {value_type} ({width} bits): it rolls over at "
            f"2^{width}, not 2^{bits}",
        )
    if doc.get("sensors", sensor_id, "scale") is not None:
        yield doc.at(
            (*here, "sensor"),
            f"sensor `{sensor_id}` is scaled: a counter needs the raw register to see its "
            "rollovers; count the raw value and set the unit instead",
        )


def _check_pm(
    doc: Document, here: tuple[str | int, ...], meter: dict[str, Any], kind: MeterKind
) -> Iterator[Diagnostic]:
    pm = meter.get("pm")
    if not isinstance(pm, dict) or kind is MeterKind.GAUGE or "every" not in pm:
        return
    every = pm.get("every")
    yield from _within_wire(doc, (*here, "pm", "every"), every)
    if kind is MeterKind.RUN_HOURS and not isinstance(every, str):
        yield doc.at(
            (*here, "pm", "every"),
            f"a run-hours PM is a run time with a unit, e.g. {every}h, not a bare number",
        )
    elif kind is not MeterKind.RUN_HOURS and isinstance(every, str):
        yield doc.at(
            (*here, "pm", "every"),
            f"a {kind.value} PM is a count (e.g. 10000), not a time",
        )


def _check_limits(
    doc: Document, here: tuple[str | int, ...], meter: dict[str, Any]
) -> Iterator[Diagnostic]:
    above, below = meter.get("above"), meter.get("below")
    for option, value in (("above", above), ("below", below)):
        yield from _within_wire(doc, (*here, option), value)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (above, below))
    if numbers and float(above) <= float(below):  # type: ignore[arg-type]
        yield doc.at(
            (*here, "above"),
            f"`above: {above}` is not above `below: {below}`: one of the triggers would "
            "always hold",
        )


def _within_wire(doc: Document, path: tuple[str | int, ...], value: Any) -> Iterator[Diagnostic]:
    """A number no plant data message can carry (every message of the meter carries its
    limits and PM: each would be dead-lettered) is refused here."""
    if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > MAX_VALUE:
        yield doc.at(path, f"{value} is beyond what MaintainX is sent (at most {MAX_VALUE:.0e})")


def _duration(value: Any) -> int | None:
    try:
        return parse_duration(value)
    except ValueError:
        return None  # reported where it was written


def _sensor_poll_ns(doc: Document, sensor_id: Any) -> int | None:
    """How often the sensor is read: its connection's ``poll``, else ``defaults.poll``."""
    if not isinstance(sensor_id, str):
        return None
    connection = doc.get("sensors", sensor_id, "connection")
    raw = doc.get("connections", connection, "poll") if isinstance(connection, str) else None
    if raw is None:
        raw = doc.get("defaults", "poll")
    return DEFAULT_POLL_NS if raw is None else _duration(raw)


def _check_gap(
    doc: Document, here: tuple[str | int, ...], meter: dict[str, Any]
) -> Iterator[Diagnostic]:
    if "max_gap" not in meter:
        return
    gap, poll = _duration(meter.get("max_gap")), _sensor_poll_ns(doc, meter.get("sensor"))
    if gap is not None and poll is not None and gap < poll:
        yield doc.at(
            (*here, "max_gap"),
            f"max_gap {format_duration(gap)} is shorter than the sensor's poll "
            f"({format_duration(poll)}): no interval would ever count as run time",
        )


def _check_downtime_rule(
    doc: Document, here: tuple[str | int, ...], asset_id: str
) -> Iterator[Diagnostic]:
    rule_id = doc.get(*here, "rule")
    if not isinstance(rule_id, str):
        return
    rules = doc.get("rules")
    found = {
        str(rule.get("id")): rule
        for rule in (rules if isinstance(rules, list) else [])
        if isinstance(rule, dict)
    }
    rule = found.get(rule_id)
    if rule is None:
        hint = did_you_mean(rule_id, sorted(found))
        yield doc.at((*here, "rule"), f"unknown rule `{rule_id}`{hint}")
        return
    if rule.get("asset") != asset_id:
        yield doc.at(
            (*here, "rule"),
            f"rule `{rule_id}` is on asset `{rule.get('asset')}`, not `{asset_id}`: an "
            "asset's downtime comes from a rule of its own",
        )
    elif rule.get("priority") != "HIGH":
        yield doc.at(
            (*here, "rule"),
            f"rule `{rule_id}` is not priority HIGH: each of its episodes becomes downtime",
            "warning",
        )


def check_downtime(doc: Document) -> Iterator[Diagnostic]:
    """``assets.<id>.downtime``: a known sensor, or a HIGH rule of the asset; on an asset
    MaintainX knows."""
    assets = doc.get("assets")
    for asset_id, asset in assets.items() if isinstance(assets, dict) else ():
        if not isinstance(asset, dict) or not isinstance(asset.get("downtime"), dict):
            continue
        here: tuple[str | int, ...] = ("assets", str(asset_id), "downtime")
        yield from _unknown(doc, (*here, "running"), "sensor", "sensors")
        yield from _check_downtime_rule(doc, here, str(asset_id))
        sensor_id = doc.get(*here, "running")
        if isinstance(sensor_id, str) and _register_type(doc, sensor_id) == "string":
            yield doc.at(
                (*here, "running"), f"sensor `{sensor_id}` holds text: running is a number"
            )
        if asset.get("maintainx_id") is None:
            yield doc.at(
                here,
                f"asset `{asset_id}` has no `maintainx_id`: its downtime cannot reach "
                "MaintainX (status changes are counted and set aside)",
                "warning",
                key=True,
            )
