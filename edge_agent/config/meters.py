"""The ``meters:`` section of a site file (issue 14): which plant values become MaintainX
meters, and the triggers MaintainX itself opens work orders from.

::

    meters:
      p101-run-hours:
        asset: P-101
        kind: run_hours            # gauge | counter | run_hours | starts
        sensor: p101_running
        every: 5m                  # send the value at most this often
        max_gap: 2m                # run_hours: a longer silence counts no run time
                                   # (default: 3 polls of the sensor)
        maintainx_meter_id: 53     # optional: else created once with POST /meters
        pm: {every: 500h, title: "P-101 500 h service", procedure_template_id: 12}
      p101-temp: {asset: P-101, kind: gauge, sensor: p101_temp, deadband: 2, above: 90}
      press-strokes: {asset: PR-1, kind: counter, sensor: pr1_strokes, bits: 32}

The models check each value alone; :func:`check_meters` checks them against each other and
against the rest of the file (unknown sensor or asset, a counter on a float register, an
option of another kind), with the file, line and field of each problem. This module does
not import ``models`` (which imports it for the ``meters:`` field).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.messages import did_you_mean
from edge_agent.config.units import Duration, format_duration, parse_duration

if TYPE_CHECKING:
    from edge_agent.config.loader import Document

NS_PER_HOUR: Final = 3_600_000_000_000
# A run-hours meter's default bound on a gap, in polls of its sensor: one missed poll, or
# two, still counts; a longer silence does not.
GAP_POLLS: Final = 3
DEFAULT_POLL_NS: Final = 1_000_000_000  # defaults.poll's own default (config/models.py)
_HOURS_RE: Final = re.compile(r"^\s*(\d{1,7}(?:\.\d{1,6})?)\s*h\s*$")


class _Model(BaseModel):
    # The same rules as every section of the site file (config/models.py's Model).
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


class MeterKind(StrEnum):
    """What a meter reports: a value as it is, or a total that only grows."""

    GAUGE = "gauge"
    COUNTER = "counter"
    RUN_HOURS = "run_hours"
    STARTS = "starts"

    @property
    def cumulative(self) -> bool:
        return self is not MeterKind.GAUGE


# The MaintainX unit of each kind when the meter names none (the spec's recommended units).
DEFAULT_UNITS: Final = {
    MeterKind.RUN_HOURS: "Hours",
    MeterKind.STARTS: "Cycles",
    MeterKind.COUNTER: "Cycles",
}
# Options that belong to some kinds only.
KIND_OPTIONS: Final = {
    "bits": (MeterKind.COUNTER,),
    "max_step": (MeterKind.COUNTER,),
    "max_gap": (MeterKind.RUN_HOURS,),
    "deadband": (MeterKind.GAUGE,),
    "above": (MeterKind.GAUGE,),
    "below": (MeterKind.GAUGE,),
    "pm": (MeterKind.COUNTER, MeterKind.RUN_HOURS, MeterKind.STARTS),
}
# Register types that hold whole numbers, and their width in bits.
INTEGER_REGISTER_BITS: Final = {
    "int16": 16,
    "uint16": 16,
    "int32": 32,
    "uint32": 32,
    "int64": 64,
    "uint64": 64,
}


def pm_amount(every: float | str) -> float:
    """A PM interval in the meter's unit: ``500h`` → 500.0 (hours; longer than the year a
    duration may hold elsewhere, since overhauls come every 10,000 h); ``30d`` → 720.0; a
    number → itself (counts). Raises ValueError for anything else."""
    if isinstance(every, bool):
        raise ValueError("expected a count or a run time such as 500h, not true/false")
    if isinstance(every, int | float):
        if every <= 0:
            raise ValueError("must be more than 0")
        return float(every)
    match = _HOURS_RE.match(every)
    hours = float(match.group(1)) if match else parse_duration(every) / NS_PER_HOUR
    if hours <= 0:
        raise ValueError("must be more than 0")
    return hours


class PreventiveMaintenance(_Model):
    """A PM every ``every`` of the meter (run time for run hours, a count otherwise): a
    MaintainX meter trigger (``INCREMENTED_BY``) that opens a work order titled ``title``."""

    every: float | str
    title: Annotated[str, Field(min_length=1, max_length=1000)]
    procedure_template_id: Annotated[int, Field(ge=1)] | None = None

    @field_validator("every")
    @classmethod
    def _positive(cls, value: float | str) -> float | str:
        pm_amount(value)
        return value

    @property
    def amount(self) -> float:
        """The interval in the meter's unit (hours for run hours)."""
        return pm_amount(self.every)


class Meter(_Model):
    """One meter: a plant value that MaintainX keeps as a meter on an asset."""

    asset: str
    kind: MeterKind
    sensor: str
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    unit: Annotated[str, Field(min_length=1, max_length=50)] | None = None
    every: Duration = parse_duration("5m")
    deadband: Annotated[float, Field(ge=0)] | None = None
    bits: Annotated[int, Field()] | None = None
    max_step: Annotated[float, Field(gt=0)] | None = None
    max_gap: Duration | None = None
    maintainx_meter_id: Annotated[int, Field(ge=1)] | None = None
    pm: PreventiveMaintenance | None = None
    above: float | None = None
    below: float | None = None

    @field_validator("bits")
    @classmethod
    def _register_width(cls, value: int | None) -> int | None:
        if value is not None and value not in (16, 32, 64):
            raise ValueError("a register counter is 16, 32 or 64 bits wide")
        return value

    def gap_bound(self, poll_ns: int) -> int:
        """The longest interval a run-hours meter counts: ``max_gap``, else 3 polls."""
        return self.max_gap if self.max_gap is not None else GAP_POLLS * poll_ns

    def maintainx_unit(self, sensor_unit: str | None) -> str:
        """The unit MaintainX shows: the meter's own, else the kind's, else the sensor's."""
        return self.unit or DEFAULT_UNITS.get(self.kind) or sensor_unit or "Units"


# ---------------------------------------------------------------------- cross-checks


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
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (above, below))
    if numbers and float(above) <= float(below):  # type: ignore[arg-type]
        yield doc.at(
            (*here, "above"),
            f"`above: {above}` is not above `below: {below}`: one of the triggers would "
            "always hold",
        )


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
