"""The read plan: which requests one poll cycle sends, and which sensor sits where in them.

Sensors are grouped by unit id and table, sorted by address, and packed greedily into
blocks: a block grows while the next sensor starts within ``max_gap`` registers of the
block's end and the block stays within ``max_registers`` (``max_bits`` for coils and
discrete inputs). A sensor is never split across two requests. ``barriers`` are addresses
a block must not read across (a gap the device refused), found by :mod:`.source` when it
bisects a block that answered "illegal data address".
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from edge_agent.config.models import Register, RegisterTable

# Bits are cheap: a gap of one register's worth of bits costs what one register costs.
BITS_PER_REGISTER = 16


@dataclass(frozen=True, slots=True)
class PlannedSensor:
    """One sensor inside a request: ``offset`` registers (or bits) from the block start."""

    sensor_id: str
    register: Register
    offset: int
    count: int  # registers (or bits) it spans: register.count, kept for speed


@dataclass(frozen=True, slots=True)
class BlockRead:
    """One read request: ``count`` registers (or bits) from ``address`` on ``unit_id``."""

    unit_id: int
    table: RegisterTable
    address: int
    count: int
    sensors: tuple[PlannedSensor, ...]

    def subset(self, sensors: Sequence[PlannedSensor]) -> BlockRead:
        """The smallest block covering some of this block's sensors (for bisection)."""
        start = min(self.address + s.offset for s in sensors)
        end = max(self.address + s.offset + s.count for s in sensors)
        moved = tuple(
            PlannedSensor(s.sensor_id, s.register, self.address + s.offset - start, s.count)
            for s in sensors
        )
        return BlockRead(self.unit_id, self.table, start, end - start, moved)


@dataclass(frozen=True, slots=True)
class SensorAddress:
    """What the planner needs to know about one sensor."""

    sensor_id: str
    unit_id: int
    register: Register


@dataclass(frozen=True, slots=True)
class Limits:
    """A connection's request limits (from ``ModbusTcp`` / ``ModbusRtu``)."""

    max_gap: int = 10
    max_registers: int = 125
    max_bits: int = 2000


@dataclass
class Plan:
    """The requests of one cycle, in the order to send them (grouped by unit id)."""

    blocks: list[BlockRead] = field(default_factory=list)

    def units(self) -> list[int]:
        return sorted({b.unit_id for b in self.blocks})

    def for_unit(self, unit_id: int) -> list[BlockRead]:
        return [b for b in self.blocks if b.unit_id == unit_id]


def build_plan(
    sensors: Iterable[SensorAddress],
    limits: Limits,
    barriers: Mapping[tuple[int, RegisterTable], Sequence[int]] | None = None,
) -> Plan:
    """Pack sensors into the fewest requests that respect the limits and the barriers."""
    groups: dict[tuple[int, RegisterTable], list[SensorAddress]] = defaultdict(list)
    for sensor in sensors:
        groups[(sensor.unit_id, sensor.register.table)].append(sensor)
    plan = Plan()
    for key in sorted(groups, key=lambda k: (k[0], k[1].value)):
        unit_id, table = key
        members = sorted(groups[key], key=lambda s: (s.register.address, s.sensor_id))
        walls = sorted((barriers or {}).get(key, ()))
        plan.blocks.extend(_pack(unit_id, table, members, limits, walls))
    return plan


def _pack(
    unit_id: int,
    table: RegisterTable,
    members: list[SensorAddress],
    limits: Limits,
    walls: list[int],
) -> list[BlockRead]:
    if table.is_bits:
        largest, gap = limits.max_bits, limits.max_gap * BITS_PER_REGISTER
    else:
        largest, gap = limits.max_registers, limits.max_gap
    blocks: list[BlockRead] = []
    current: list[SensorAddress] = []
    start = end = 0
    for sensor in members:
        s_start = sensor.register.address
        s_end = s_start + sensor.register.count
        if current and (
            s_start - end > gap
            or max(end, s_end) - start > largest
            or _crosses_wall(walls, start, s_start)
        ):
            blocks.append(_block(unit_id, table, start, end, current))
            current = []
        if not current:
            start, end = s_start, s_end
        current.append(sensor)
        end = max(end, s_end)
    if current:
        blocks.append(_block(unit_id, table, start, end, current))
    return blocks


def _crosses_wall(walls: list[int], block_start: int, sensor_start: int) -> bool:
    """Is there a barrier in (block_start, sensor_start]?"""
    i = bisect.bisect_right(walls, block_start)
    return i < len(walls) and walls[i] <= sensor_start


def _block(
    unit_id: int, table: RegisterTable, start: int, end: int, members: list[SensorAddress]
) -> BlockRead:
    planned = tuple(
        PlannedSensor(m.sensor_id, m.register, m.register.address - start, m.register.count)
        for m in members
    )
    return BlockRead(unit_id, table, start, end - start, planned)


def naive_plan(sensors: Iterable[SensorAddress]) -> Plan:
    """One request per sensor: what the coalesced plan is measured against."""
    return Plan(
        [
            BlockRead(
                s.unit_id,
                s.register.table,
                s.register.address,
                s.register.count,
                (PlannedSensor(s.sensor_id, s.register, 0, s.register.count),),
            )
            for s in sensors
        ]
    )
