"""The read plan: fewest requests within the limits, no sensor split, barriers respected."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge_agent.config.models import Register, RegisterTable, RegisterType
from edge_agent.sources.modbus.plan import Limits, SensorAddress, build_plan, naive_plan


def holding(sid: str, address: int, kind: str = "uint16", unit: int = 1) -> SensorAddress:
    return SensorAddress(
        sid, unit, Register(table=RegisterTable.HOLDING, address=address, type=kind)
    )


def coil(sid: str, address: int, unit: int = 1) -> SensorAddress:
    return SensorAddress(sid, unit, Register(table=RegisterTable.COIL, address=address))


def test_contiguous_registers_fill_requests_of_125() -> None:
    sensors = [holding(f"s{i}", i) for i in range(300)]
    plan = build_plan(sensors, Limits())
    assert [(b.address, b.count) for b in plan.blocks] == [(0, 125), (125, 125), (250, 50)]


def test_a_sensor_is_never_split_across_requests() -> None:
    # 62 float32 = 124 registers, the 63rd would end at 126 > 125: it starts a new block.
    sensors = [holding(f"f{i}", 2 * i, "float32") for i in range(63)]
    plan = build_plan(sensors, Limits())
    assert [(b.address, b.count) for b in plan.blocks] == [(0, 124), (124, 2)]


def test_gaps_up_to_max_gap_are_read_through_larger_gaps_are_not() -> None:
    sensors = [holding("a", 0), holding("b", 11), holding("c", 23)]
    plan = build_plan(sensors, Limits(max_gap=10))
    # a ends at 1, b starts at 11: a gap of 10 (read through); b ends at 12, c at 23: 11.
    assert [(b.address, b.count) for b in plan.blocks] == [(0, 12), (23, 1)]


def test_units_and_tables_are_separate_requests() -> None:
    sensors = [holding("a", 0), holding("b", 1, unit=2), coil("c", 0), coil("d", 5)]
    plan = build_plan(sensors, Limits())
    keys = [(b.unit_id, b.table, b.address, b.count) for b in plan.blocks]
    assert keys == [
        (1, RegisterTable.COIL, 0, 6),
        (1, RegisterTable.HOLDING, 0, 1),
        (2, RegisterTable.HOLDING, 1, 1),
    ]


def test_bits_are_limited_to_max_bits() -> None:
    sensors = [coil(f"c{i}", i) for i in range(4500)]
    plan = build_plan(sensors, Limits())
    assert [b.count for b in plan.blocks] == [2000, 2000, 500]


def test_a_barrier_stops_coalescing_across_a_refused_gap() -> None:
    sensors = [holding("a", 0), holding("b", 5)]
    barriers = {(1, RegisterTable.HOLDING): [3]}
    plan = build_plan(sensors, Limits(), barriers)
    assert [(b.address, b.count) for b in plan.blocks] == [(0, 1), (5, 1)]


def test_offsets_point_at_each_sensor_within_its_block() -> None:
    sensors = [holding("a", 10, "float32"), holding("b", 14, "int16"), holding("c", 12, "uint32")]
    (block,) = build_plan(sensors, Limits()).blocks
    assert block.address == 10
    assert {s.sensor_id: s.offset for s in block.sensors} == {"a": 0, "c": 2, "b": 4}


layouts = st.lists(
    st.tuples(
        st.integers(0, 3000),
        st.sampled_from([RegisterType.UINT16, RegisterType.FLOAT32, RegisterType.FLOAT64]),
    ),
    min_size=1,
    max_size=300,
)


@given(layouts, st.integers(0, 20), st.integers(4, 125))
def test_every_block_respects_the_limits_and_covers_its_sensors(
    layout: list[tuple[int, RegisterType]], gap: int, largest: int
) -> None:
    sensors = [holding(f"s{i}", a, k) for i, (a, k) in enumerate(layout)]
    plan = build_plan(sensors, Limits(max_gap=gap, max_registers=largest))
    planned = [s.sensor_id for b in plan.blocks for s in b.sensors]
    assert sorted(planned) == sorted(s.sensor_id for s in sensors)  # each exactly once
    for block in plan.blocks:
        assert block.count <= largest
        for s in block.sensors:
            assert block.address + s.offset == s.register.address
            assert s.offset + s.count <= block.count
    assert len(plan.blocks) <= len(naive_plan(sensors).blocks)
