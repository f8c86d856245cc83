"""Plant data messages (issue 14): a meter's reading and an asset's status change, each one
JSON object that is both what the plant-data outbox stores and what travels on MQTT
(``{prefix}/{site}/meters`` and ``.../assets``), so a sink sends an item as it is.

- ``edge-agent/meter-reading@1``: one value of one meter at one time. ``id`` is stable per
  meter and time (:func:`meter_reading_id`): a resend is recognisable. ``meter_spec`` is what
  a sender needs to create the MaintainX meter and its triggers once, when
  ``maintainx_meter_id`` is null.
- ``edge-agent/asset-status@1``: an asset went ``OFFLINE`` (downtime ``UNPLANNED`` or
  ``PLANNED``) or ``ONLINE`` again, from ``started_at``. ``id`` is stable per asset and
  change (:func:`asset_status_id`).

Pure: no I/O, no clock. Bounds as :mod:`edge_agent.wire.alert` (a value no store can hold
is refused here, with the field, before anything is written).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from edge_agent.errors import EdgeAgentError
from edge_agent.wire.alert import (
    INT64_MAX,
    MAX_ID_CHARS,
    MAX_TITLE_CHARS,
    SITE_PATTERN,
    WireError,
    is_wire_id,
    wire_time_ns,
)

METER_READING_SCHEMA: Final = "edge-agent/meter-reading@1"
ASSET_STATUS_SCHEMA: Final = "edge-agent/asset-status@1"
METER_KINDS: Final = ("gauge", "counter", "run_hours", "starts")
CUMULATIVE_KINDS: Final = frozenset({"counter", "run_hours", "starts"})
ASSET_STATUSES: Final = ("ONLINE", "OFFLINE")
DOWNTIME_TYPES: Final = ("PLANNED", "UNPLANNED")
MAX_UNIT_CHARS: Final = 50
MAX_METER_NAME_CHARS: Final = 200
MAX_DESCRIPTION_CHARS: Final = 2000
MAX_VALUE: Final = 1e15
"""A meter value MaintainX can store and a person can read (a 64-bit counter's total fits)."""

MeterKindName = Literal["gauge", "counter", "run_hours", "starts"]
AssetStatusName = Literal["ONLINE", "OFFLINE"]
DowntimeType = Literal["PLANNED", "UNPLANNED"]

_SITE_RE: Final = re.compile(SITE_PATTERN)


class PlantMessageError(EdgeAgentError, ValueError):
    """A plant data message that breaks its schema (the message names the field)."""


@dataclass(frozen=True, slots=True)
class AssetRef:
    """The asset a meter or status belongs to: its id in the site file, its name and its
    MaintainX id (None: not yet linked; the message is still valid, MaintainX waits)."""

    id: str
    name: str
    maintainx_id: int | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "maintainx_id": self.maintainx_id}


@dataclass(frozen=True, slots=True)
class PmSpec:
    """A preventive maintenance every ``every`` of the meter's unit (hours for run hours)."""

    every: float
    title: str
    procedure_template_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"every": self.every, "title": self.title}
        if self.procedure_template_id is not None:
            data["procedure_template_id"] = self.procedure_template_id
        return data


@dataclass(frozen=True, slots=True)
class MeterSpec:
    """What creating a MaintainX meter and its triggers needs: its name and unit, its kind,
    a PM (cumulative meters) and ``above``/``below`` limits (gauges)."""

    name: str
    unit: str
    kind: MeterKindName
    pm: PmSpec | None = None
    above: float | None = None
    below: float | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "unit": self.unit, "kind": self.kind}
        if self.pm is not None:
            data["pm"] = self.pm.to_json()
        if self.above is not None:
            data["above"] = self.above
        if self.below is not None:
            data["below"] = self.below
        return data


@dataclass(frozen=True, slots=True)
class MeterReadingMessage:
    """``edge-agent/meter-reading@1``."""

    site: str
    id: str
    meter: str
    asset: AssetRef
    maintainx_meter_id: int | None
    meter_spec: MeterSpec
    value: float
    time: str
    time_ns: int
    kind: MeterKindName

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": METER_READING_SCHEMA,
            "site": self.site,
            "id": self.id,
            "meter": self.meter,
            "asset": self.asset.to_json(),
            "maintainx_meter_id": self.maintainx_meter_id,
            "meter_spec": self.meter_spec.to_json(),
            "value": self.value,
            "time": self.time,
            "time_ns": self.time_ns,
            "kind": self.kind,
        }


@dataclass(frozen=True, slots=True)
class AssetStatusMessage:
    """``edge-agent/asset-status@1``."""

    site: str
    id: str
    asset: AssetRef
    status: AssetStatusName
    downtime_type: DowntimeType | None
    started_at: str
    time_ns: int
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": ASSET_STATUS_SCHEMA,
            "site": self.site,
            "id": self.id,
            "asset": self.asset.to_json(),
            "status": self.status,
            "downtime_type": self.downtime_type,
            "started_at": self.started_at,
            "time_ns": self.time_ns,
        }
        if self.description is not None:
            data["description"] = self.description
        return data


def meter_reading_id(site: str, meter: str, time_ns: int) -> str:
    """The stable id of a meter's reading at a time: the same value resent has the same id."""
    return f"{site}/meter/{meter}/{time_ns}"


def asset_status_id(site: str, asset: str, status: str, time_ns: int) -> str:
    """The stable id of an asset's status change (its status and the time it started)."""
    return f"{site}/asset/{asset}/{status}/{time_ns}"


# ---------------------------------------------------------------------------- the checks


def check_meter_reading(obj: object) -> MeterReadingMessage:
    """A meter-reading message from JSON data, every field checked (raises
    :class:`PlantMessageError` naming the first bad field; never anything else)."""
    try:
        return _meter_reading(obj)
    except PlantMessageError:
        raise
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise PlantMessageError(f"unreadable message: {type(exc).__name__}") from exc


def check_asset_status(obj: object) -> AssetStatusMessage:
    """An asset-status message from JSON data, every field checked (raises
    :class:`PlantMessageError` naming the first bad field; never anything else)."""
    try:
        return _asset_status(obj)
    except PlantMessageError:
        raise
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise PlantMessageError(f"unreadable message: {type(exc).__name__}") from exc


def _object(obj: object, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise PlantMessageError(f"{where}: a JSON object is required")
    return obj


def _text(data: dict[str, Any], key: str, limit: int, *, where: str = "") -> str:
    value = data.get(key)
    if (
        not isinstance(value, str)
        or not value
        or len(value) > limit
        or "\x00" in value
        or not value.isprintable()
    ):
        raise PlantMessageError(f"{where}{key}: a printable text of 1..{limit} characters")
    return value


def _site(data: dict[str, Any]) -> str:
    site = data.get("site")
    if not isinstance(site, str) or not _SITE_RE.match(site):
        raise PlantMessageError("site: a site id ([a-z0-9][a-z0-9-]{0,62}) is required")
    return site


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlantMessageError(f"{where}: a number is required")
    number = float(value)
    if not math.isfinite(number) or abs(number) > MAX_VALUE:
        raise PlantMessageError(f"{where}: a finite number within ±{MAX_VALUE:.0e}")
    return number


def _optional_id(value: object, where: str) -> int | None:
    if value is None:
        return None
    if not is_wire_id(value):
        raise PlantMessageError(f"{where}: an id in 1..2**63-1 or null is required")
    assert isinstance(value, int)
    return value


def _time_ns(data: dict[str, Any]) -> int:
    time_ns = data.get("time_ns")
    if not isinstance(time_ns, int) or isinstance(time_ns, bool) or not 0 <= time_ns <= INT64_MAX:
        raise PlantMessageError("time_ns: an integer in 0..2**63-1 is required")
    return time_ns


def _iso(data: dict[str, Any], key: str) -> tuple[str, int]:
    value = data.get(key)
    try:
        return str(value), wire_time_ns(value, key)
    except WireError as exc:
        raise PlantMessageError(str(exc)) from None


def _asset(obj: object) -> AssetRef:
    asset = _object(obj, "asset")
    name = asset.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_ID_CHARS or "\x00" in name:
        raise PlantMessageError(f"asset.name: a text of <= {MAX_ID_CHARS} characters")
    return AssetRef(
        id=_text(asset, "id", MAX_ID_CHARS, where="asset."),
        name=name,
        maintainx_id=_optional_id(asset.get("maintainx_id"), "asset.maintainx_id"),
    )


def _pm(obj: object) -> PmSpec | None:
    if obj is None:
        return None
    pm = _object(obj, "meter_spec.pm")
    every = _number(pm.get("every"), "meter_spec.pm.every")
    if every <= 0:
        raise PlantMessageError("meter_spec.pm.every: more than 0 is required")
    template = pm.get("procedure_template_id")
    return PmSpec(
        every=every,
        title=_text(pm, "title", MAX_TITLE_CHARS, where="meter_spec.pm."),
        procedure_template_id=_optional_id(template, "meter_spec.pm.procedure_template_id"),
    )


def _spec(obj: object, kind: str) -> MeterSpec:
    spec = _object(obj, "meter_spec")
    if spec.get("kind") != kind:
        raise PlantMessageError("meter_spec.kind: the message's kind is required")
    above = spec.get("above")
    below = spec.get("below")
    above_value = None if above is None else _number(above, "meter_spec.above")
    below_value = None if below is None else _number(below, "meter_spec.below")
    if above_value is not None and below_value is not None and above_value <= below_value:
        raise PlantMessageError("meter_spec.above: more than meter_spec.below is required")
    pm = _pm(spec.get("pm"))
    if pm is not None and kind not in CUMULATIVE_KINDS:
        raise PlantMessageError("meter_spec.pm: only on a counter, run_hours or starts meter")
    if (above_value is not None or below_value is not None) and kind in CUMULATIVE_KINDS:
        raise PlantMessageError("meter_spec.above/below: only on a gauge")
    return MeterSpec(
        name=_text(spec, "name", MAX_METER_NAME_CHARS, where="meter_spec."),
        unit=_text(spec, "unit", MAX_UNIT_CHARS, where="meter_spec."),
        kind=kind,  # type: ignore[arg-type]  # checked against METER_KINDS by the caller
        pm=pm,
        above=above_value,
        below=below_value,
    )


def _meter_reading(obj: object) -> MeterReadingMessage:
    data = _object(obj, "message")
    if data.get("schema") != METER_READING_SCHEMA:
        raise PlantMessageError(f"schema: {METER_READING_SCHEMA} is required")
    kind = data.get("kind")
    if kind not in METER_KINDS:
        raise PlantMessageError(f"kind: one of {', '.join(METER_KINDS)} is required")
    value = _number(data.get("value"), "value")
    if kind in CUMULATIVE_KINDS and value < 0:
        raise PlantMessageError("value: a cumulative meter's value is never negative")
    time_text, time_ns = _iso(data, "time")
    if _time_ns(data) != time_ns:
        raise PlantMessageError("time_ns: the same instant as time is required")
    return MeterReadingMessage(
        site=_site(data),
        id=_text(data, "id", MAX_ID_CHARS),
        meter=_text(data, "meter", MAX_ID_CHARS),
        asset=_asset(data.get("asset")),
        maintainx_meter_id=_optional_id(data.get("maintainx_meter_id"), "maintainx_meter_id"),
        meter_spec=_spec(data.get("meter_spec"), kind),
        value=value,
        time=time_text,
        time_ns=time_ns,
        kind=kind,
    )


def _asset_status(obj: object) -> AssetStatusMessage:
    data = _object(obj, "message")
    if data.get("schema") != ASSET_STATUS_SCHEMA:
        raise PlantMessageError(f"schema: {ASSET_STATUS_SCHEMA} is required")
    status = data.get("status")
    if status not in ASSET_STATUSES:
        raise PlantMessageError(f"status: one of {', '.join(ASSET_STATUSES)} is required")
    downtime = data.get("downtime_type")
    if status == "OFFLINE" and downtime not in DOWNTIME_TYPES:
        raise PlantMessageError("downtime_type: PLANNED or UNPLANNED is required when OFFLINE")
    if status == "ONLINE" and downtime is not None:
        raise PlantMessageError("downtime_type: null is required when ONLINE")
    started_text, started_ns = _iso(data, "started_at")
    if _time_ns(data) != started_ns:
        raise PlantMessageError("time_ns: the same instant as started_at is required")
    description = data.get("description")
    if description is not None and (
        not isinstance(description, str)
        or len(description) > MAX_DESCRIPTION_CHARS
        or "\x00" in description
    ):
        raise PlantMessageError(f"description: a text of <= {MAX_DESCRIPTION_CHARS} characters")
    return AssetStatusMessage(
        site=_site(data),
        id=_text(data, "id", MAX_ID_CHARS),
        asset=_asset(data.get("asset")),
        status=status,
        downtime_type=downtime,
        started_at=started_text,
        time_ns=started_ns,
        description=description,
    )
