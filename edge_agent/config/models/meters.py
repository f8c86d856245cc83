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

The models check each value alone; ``config/checks/meters.py`` checks them against each
other and against the rest of the file (unknown sensor or asset, a counter on a float
register, an option of another kind), with the file, line and field of each problem.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Final

from pydantic import Field, field_validator, model_validator

from edge_agent.config.models.base import Model
from edge_agent.config.units import Duration, parse_duration

NS_PER_HOUR: Final = 3_600_000_000_000
# A run-hours meter's default bound on a gap, in polls of its sensor: one missed poll, or
# two, still counts; a longer silence does not.
GAP_POLLS: Final = 3
DEFAULT_POLL_NS: Final = 1_000_000_000  # Defaults.poll's own default (config/models/site.py)
_HOURS_RE: Final = re.compile(r"^\s*(\d{1,7}(?:\.\d{1,6})?)\s*h\s*$")


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


class PreventiveMaintenance(Model):
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


class Meter(Model):
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

    def maintainx_name(self, key: str) -> str:
        """The MaintainX meter's name (how it is found again): ``name``, else the meter's
        key in the site file."""
        return self.name or key


class AssetDowntime(Model):
    """``assets.<id>.downtime``: the asset's downtime in MaintainX, from a running sensor
    (``running``: non-zero = running; ``OFFLINE`` when it stops, ``ONLINE`` when it runs
    again) or from a rule of the asset (``rule``, priority HIGH: ``OFFLINE`` while its
    episode is active, ``ONLINE`` when it clears). One of the two.

    ``min_duration``: a change is posted only once the new state held that long (its
    ``startedAt`` still the time it began), so a toggling sensor does not spend the key's
    budget. Default ``0s``: every change, at once (docs/meters.md says why)."""

    running: str | None = None
    rule: str | None = None
    min_duration: Duration = 0

    @model_validator(mode="after")
    def _one_source(self) -> AssetDowntime:
        if (self.running is None) == (self.rule is None):
            raise ValueError("give one of `running` (a sensor) or `rule` (a HIGH rule)")
        return self

    @property
    def source(self) -> str:
        """What the stage listens to: the sensor's id, or ``rule:ID``."""
        return self.running if self.running is not None else f"rule:{self.rule}"
