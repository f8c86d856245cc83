"""What the site file's meters become in the running agent (issue 14): the arithmetic for
each ``meters:`` entry, and the parts of a plant data message the site file gives (the
meter's MaintainX spec, its asset)."""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any, Final, Protocol

from edge_agent.config.models import SiteConfig
from edge_agent.config.models.meters import Meter, MeterKind
from edge_agent.meters import (
    CounterMeter,
    GaugeMeter,
    MeterReading,
    Refusal,
    RunHours,
    StartsMeter,
)
from edge_agent.readings import Reading
from edge_agent.wire.plant import AssetRef, MeterSpec, PmSpec


class MeterLike(Protocol):
    name: str
    refused: Counter[Refusal]

    def feed(self, reading: Reading) -> MeterReading | None: ...

    def state(self) -> dict[str, Any]: ...

    def restore(self, state: Any) -> None: ...


def later_schema(schema: object, name: str) -> int | None:
    """The version of ``edge-agent/NAME@N`` when N is above 1 (a later release's file)."""
    prefix = f"edge-agent/{name}@"
    if isinstance(schema, str) and schema.startswith(prefix):
        digits = schema[len(prefix) :]
        if digits.isdigit() and len(digits) < 7 and int(digits) > 1:
            return int(digits)
    return None


def build_meter(key: str, meter: Meter, poll_ns: int) -> MeterLike:
    """The arithmetic for one ``meters:`` entry."""
    if meter.kind is MeterKind.RUN_HOURS:
        return RunHours(key, max_gap_ns=meter.gap_bound(poll_ns), every_ns=meter.every)
    if meter.kind is MeterKind.COUNTER:
        return CounterMeter(key, every_ns=meter.every, bits=meter.bits, max_step=meter.max_step)
    if meter.kind is MeterKind.STARTS:
        return StartsMeter(key, every_ns=meter.every)
    return GaugeMeter(key, every_ns=meter.every, deadband=meter.deadband)


def sensor_poll_ns(config: SiteConfig, sensor_id: str) -> int:
    """How often a sensor is read: its connection's ``poll``, else ``defaults.poll``."""
    sensor = config.sensors.get(sensor_id)
    connection = config.connections.get(sensor.connection) if sensor is not None else None
    poll = getattr(connection, "poll", None)
    return int(poll) if isinstance(poll, int) and poll > 0 else int(config.defaults.poll)


def meter_spec(key: str, meter: Meter, config: SiteConfig) -> MeterSpec:
    """What the MaintainX side needs to create the meter and its triggers once."""
    sensor = config.sensors.get(meter.sensor)
    pm = meter.pm
    return MeterSpec(
        name=meter.maintainx_name(key),
        unit=meter.maintainx_unit(sensor.unit if sensor is not None else None),
        kind=meter.kind.value,
        pm=None if pm is None else PmSpec(pm.amount, pm.title, pm.procedure_template_id),
        above=meter.above,
        below=meter.below,
    )


def asset_ref(config: SiteConfig, asset_id: str) -> AssetRef:
    asset = config.assets.get(asset_id)
    if asset is None:
        return AssetRef(asset_id, "", None)
    return AssetRef(asset_id, asset.name, asset.maintainx_id)


# What a meter's state knows of its sensor's last value: forgotten when a reload gives the
# meter another sensor or register, whose first value is a level to count from (compared
# with the old register's, it read as a jump or a reset that added its whole count).
_SOURCE_FIELDS: Final = {"last_raw": None, "pending_raw": None, "pending_count": 0}
_RUNNING_FIELDS: Final = {"last_running": None}


def source_of(meter: Meter, config: SiteConfig) -> str:
    """What a meter reads, as its saved state records it: the sensor, the register width
    and a digest of the sensor's definition (its register, its scaling)."""
    sensor = config.sensors.get(meter.sensor)
    described = sensor.model_dump_json() if sensor is not None else ""
    digest = hashlib.sha256(described.encode()).hexdigest()[:16]
    return f"{meter.sensor}/{meter.bits}/{digest}"


def from_a_new_source(saved: Any) -> Any:
    """A meter's saved state with its totals, without what it knew of its old sensor."""
    if not isinstance(saved, dict):
        return saved
    forget = {**_SOURCE_FIELDS, **_RUNNING_FIELDS}
    return {**saved, **{k: v for k, v in forget.items() if k in saved}}
