"""The block decoder against the per-sensor decoder: the same readings from the same words.

Blocks are drawn at random: every numeric type in every word and byte order, with and
without scale, gaps between sensors, sensors sharing registers, bools and strings among
them, and register contents that include NaN and infinity bit patterns.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.config.models import Register, RegisterTable, RegisterType, Scale
from edge_agent.readings import READING_FIELDS, Quality, Reading, new_reading
from edge_agent.sources.modbus.block_decode import BlockDecoder
from edge_agent.sources.modbus.decode import (
    NOT_A_NUMBER,
    DecodeError,
    compile_decoder,
    decode_registers,
)
from edge_agent.sources.modbus.plan import BlockRead, PlannedSensor

ORDERS = ("big", "little")
NUMERIC = [
    RegisterType.INT16,
    RegisterType.UINT16,
    RegisterType.INT32,
    RegisterType.UINT32,
    RegisterType.INT64,
    RegisterType.UINT64,
    RegisterType.FLOAT32,
    RegisterType.FLOAT64,
]


@st.composite
def registers(draw: Any) -> Register:
    shape: dict[str, Any] = {"table": "holding", "address": 0}
    kind = draw(st.sampled_from(["numeric"] * 8 + ["bool", "string"]))
    if kind == "bool":
        shape.update(type="bool", bit=draw(st.integers(0, 15)))
    elif kind == "string":
        shape.update(type="string", length=draw(st.integers(1, 6)))
    else:
        shape.update(
            type=draw(st.sampled_from(NUMERIC)),
            word_order=draw(st.sampled_from(ORDERS)),
            byte_order=draw(st.sampled_from(ORDERS)),
        )
    return Register.model_validate(shape)


scales = st.none() | st.builds(
    Scale,
    factor=st.floats(-1e3, 1e3, allow_nan=False).filter(lambda f: f != 0),
    offset=st.floats(-1e3, 1e3, allow_nan=False),
)
# Words that are often the halves of NaN or infinity, so that "not a number" is exercised.
words = st.sampled_from([0x7FC0, 0x7F80, 0xFF80, 0x7FF8, 0x7FF0, 0x0000, 0xFFFF]) | st.integers(
    0, 0xFFFF
)


@st.composite
def blocks(draw: Any) -> tuple[BlockRead, dict[str, Scale | None], tuple[int, ...]]:
    sensors, sensor_scales, offset = [], {}, 0
    for index in range(draw(st.integers(1, 12))):
        register = draw(registers())
        # Usually after the previous sensor (maybe with a gap); sometimes on its registers.
        offset = max(0, offset + draw(st.integers(-2, 3)))
        sensor_id = f"s{index}"
        sensors.append(PlannedSensor(sensor_id, register, offset, register.count))
        sensor_scales[sensor_id] = draw(scales) if register.value_type in NUMERIC else None
        offset += register.count
    sensors.sort(key=lambda planned: planned.offset)  # as the planner orders them
    count = max(planned.offset + planned.count for planned in sensors)
    data = tuple(draw(st.lists(words, min_size=count, max_size=count)))
    return BlockRead(1, RegisterTable.HOLDING, 0, count, tuple(sensors)), sensor_scales, data


def expected(planned: PlannedSensor, scale: Scale | None, data: tuple[int, ...]) -> Reading:
    raw = data[planned.offset : planned.offset + planned.count]
    try:
        value = decode_registers(planned.register, raw, scale)
    except DecodeError as exc:
        return Reading(planned.sensor_id, None, Quality.BAD, 7, exc.reason, raw)
    return Reading(planned.sensor_id, value, Quality.GOOD, 7, None, raw)


@given(blocks())
def test_a_block_decodes_to_what_each_sensor_decodes_to_alone(
    case: tuple[BlockRead, dict[str, Scale | None], tuple[int, ...]],
) -> None:
    block, sensor_scales, data = case
    decoders = {
        p.sensor_id: compile_decoder(p.register, sensor_scales[p.sensor_id]) for p in block.sensors
    }
    decoded = BlockDecoder(block, decoders, sensor_scales).decode(data, 7)
    wanted = [expected(p, sensor_scales[p.sensor_id], data) for p in block.sensors]
    assert [r.sensor_id for r in decoded] == [r.sensor_id for r in wanted]
    for got, want in zip(decoded, wanted, strict=True):
        # NaN never equals itself; a bad reading carries None, so == is exact otherwise.
        assert got == want and type(got.value) is type(want.value)


def test_the_four_32_bit_layouts_side_by_side_in_one_block() -> None:
    # 10.0 as a float32 (0x41200000) in ABCD, CDAB, BADC, DCBA, then a NaN in ABCD.
    layouts = [("big", "big"), ("little", "big"), ("big", "little"), ("little", "little")]
    sensors = tuple(
        PlannedSensor(
            f"f{i}",
            Register(
                table=RegisterTable.HOLDING, address=0, type="float32", word_order=w, byte_order=b
            ),
            2 * i,
            2,
        )
        for i, (w, b) in enumerate([*layouts, ("big", "big")])
    )
    data = (
        0x4120,
        0,
        0,
        0x4120,
        0x2041,
        0,
        0,
        0x2041,
        *struct.unpack(">HH", struct.pack(">f", float("nan"))),
    )
    block = BlockRead(1, RegisterTable.HOLDING, 0, 10, sensors)
    readings = BlockDecoder(block, {}, {}).decode(data, 1)
    assert [r.value for r in readings] == [10.0, 10.0, 10.0, 10.0, None]
    assert readings[4].reason == NOT_A_NUMBER and readings[4].quality is Quality.BAD
    assert readings[4].raw == data[8:10]


def test_new_reading_is_an_ordinary_frozen_reading() -> None:
    built = new_reading("s", 1.5, Quality.GOOD, 3, None, (1,), 9)
    plain = Reading("s", 1.5, Quality.GOOD, 3, None, (1,), 9)
    assert type(built) is Reading
    assert built == plain and hash(built) == hash(plain) and repr(built) == repr(plain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.value = 2.0  # type: ignore[misc]
    assert plain.received(11) == dataclasses.replace(plain, received_ns=11)


def test_the_fast_construction_has_every_field_of_reading_in_order() -> None:
    # The class swap of ``new_reading`` needs the same slots in the same order.
    assert READING_FIELDS == tuple(f.name for f in dataclasses.fields(Reading))
    assert Reading.__slots__ == READING_FIELDS


INTEGERS = [t for t in NUMERIC if t not in (RegisterType.FLOAT32, RegisterType.FLOAT64)]


@st.composite
def plain_blocks(draw: Any) -> tuple[BlockRead, tuple[int, ...]]:
    """Blocks of unscaled integers only (the usual register map): the short loop's case."""
    sensors, offset = [], 0
    for index in range(draw(st.integers(1, 12))):
        register = Register.model_validate(
            {
                "table": "holding",
                "address": 0,
                "type": draw(st.sampled_from(INTEGERS)),
                "word_order": draw(st.sampled_from(ORDERS)),
                "byte_order": draw(st.sampled_from(ORDERS)),
            }
        )
        offset = max(0, offset + draw(st.integers(-2, 3)))
        sensors.append(PlannedSensor(f"s{index}", register, offset, register.count))
        offset += register.count
    sensors.sort(key=lambda planned: planned.offset)
    count = max(planned.offset + planned.count for planned in sensors)
    data = tuple(draw(st.lists(words, min_size=count, max_size=count)))
    return BlockRead(1, RegisterTable.HOLDING, 0, count, tuple(sensors)), data


@given(plain_blocks())
def test_unscaled_integers_take_the_short_loop_and_decode_as_alone(
    case: tuple[BlockRead, tuple[int, ...]],
) -> None:
    block, data = case
    decoders = {p.sensor_id: compile_decoder(p.register, None) for p in block.sensors}
    decoder = BlockDecoder(block, decoders, {})
    assert all(layout.plain is not None for layout in decoder._layouts)
    decoded = decoder.decode(data, 7)
    wanted = [expected(p, None, data) for p in block.sensors]
    assert [r.sensor_id for r in decoded] == [r.sensor_id for r in wanted]
    for got, want in zip(decoded, wanted, strict=True):
        assert type(got) is Reading
        assert got == want and hash(got) == hash(want) and repr(got) == repr(want)
        assert type(got.value) is int and type(got.raw) is tuple
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded[0].value = 1  # type: ignore[misc]


def test_a_scaled_or_float_sensor_keeps_its_layout_off_the_short_loop() -> None:
    def planned(sensor_id: str, kind: str, offset: int) -> PlannedSensor:
        register = Register.model_validate({"table": "holding", "address": 0, "type": kind})
        return PlannedSensor(sensor_id, register, offset, register.count)

    sensors = (planned("a", "uint16", 0), planned("b", "uint16", 1), planned("c", "float32", 2))
    block = BlockRead(1, RegisterTable.HOLDING, 0, 4, sensors)
    scaled = BlockDecoder(block, {}, {"b": Scale(factor=2.0)})
    assert [layout.plain for layout in scaled._layouts] == [None]
    readings = scaled.decode((1, 2, 0x7FC0, 0), 3)
    assert [(r.value, r.quality) for r in readings] == [
        (1, Quality.GOOD),
        (4.0, Quality.GOOD),
        (None, Quality.BAD),
    ]
