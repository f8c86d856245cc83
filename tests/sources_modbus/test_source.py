"""ModbusSource against a real pymodbus server (the simulated plant) on a loopback port."""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge_agent.config.models import Register, RegisterTable, RegisterType, Scale
from edge_agent.readings import Quality, Reading
from edge_agent.sources.modbus.plan import naive_plan
from edge_agent.sources.modbus.source import ILLEGAL_DATA_ADDRESS, NOT_RESPONDING, ModbusSource

from .conftest import DEFAULTS, PlantThread, sensor, tcp
from .test_decode import FORMATS, value_strategy, wire_registers

# Each test uses its own address range of the shared plant.
HYPOTHESIS_BASE = 1000
COALESCE_BASE = 3000
ILLEGAL_BASE = 500
REPROBE_BASE = 600
DEAD_UNIT_BASE = 700


def by_id(readings: Sequence[Reading]) -> dict[str, Reading]:
    return {r.sensor_id: r for r in readings}


async def read_once(source: ModbusSource) -> dict[str, Reading]:
    try:
        return by_id(await source.read_once())
    finally:
        await source.close()


cases = st.lists(
    st.sampled_from(list(FORMATS)).flatmap(
        lambda kind: st.tuples(
            st.just(kind),
            value_strategy(kind),
            st.sampled_from(("big", "little")),
            st.sampled_from(("big", "little")),
            st.integers(0, 14),  # gap before this sensor, in registers
        )
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cases)
def test_values_encoded_with_struct_read_back_through_a_real_server(
    plant: PlantThread, case: list[tuple[RegisterType, float | int, str, str, int]]
) -> None:
    sensors = {}
    expected: dict[str, float | int] = {}
    words_at: list[tuple[int, list[int]]] = []
    address = HYPOTHESIS_BASE
    for i, (kind, value, word, byte, gap) in enumerate(case):
        address += gap
        register = Register(
            table=RegisterTable.HOLDING,
            address=address,
            type=kind,
            word_order=word,
            byte_order=byte,
        )
        words = wire_registers(kind, value, word, byte)
        words_at.append((address, words))
        sensors[f"s{i}"] = sensor(register)
        if kind is RegisterType.FLOAT32:
            value = struct.unpack(">f", struct.pack(">f", value))[0]
        expected[f"s{i}"] = value
        address += register.count

    def write() -> None:
        for start, words in words_at:
            plant.plant.set_registers("holding", start, words)

    plant.run_sync(write)
    source = ModbusSource("plc", tcp(plant.port), sensors, DEFAULTS)
    readings = asyncio.run(read_once(source))
    assert {sid: r.value for sid, r in readings.items()} == expected
    assert all(r.quality is Quality.GOOD for r in readings.values())
    for (start, words), sid in zip(words_at, sensors, strict=True):
        assert readings[sid].raw == tuple(words), start


async def test_a_string_a_scaled_value_and_bits_end_to_end(plant: PlantThread) -> None:
    text = Register(table=RegisterTable.INPUT, address=50, type="string", length=7)
    scaled = Register(table=RegisterTable.INPUT, address=60, type="int16")
    flag = Register(table=RegisterTable.HOLDING, address=70, type="bool", bit=3)
    discrete = Register(table=RegisterTable.DISCRETE, address=33)

    def write() -> None:
        plant.plant.write(text, "PUMP-01")
        plant.plant.write(scaled, -1234)
        plant.plant.set_registers("holding", 70, [0b1000])
        plant.plant.set_bits("discrete", 33, [True])

    plant.run_sync(write)
    sensors = {
        "name": sensor(text),
        "temp": sensor(scaled, scale=Scale(factor=0.1, offset=-5)),
        "flag": sensor(flag),
        "di": sensor(discrete),
    }
    readings = await read_once(ModbusSource("plc", tcp(plant.port), sensors, DEFAULTS))
    assert readings["name"].value == "PUMP-01"
    assert readings["temp"].value == -1234 * 0.1 - 5
    assert readings["flag"].value is True
    assert readings["di"].value is True


async def test_nan_in_a_float_register_is_a_bad_reading_with_its_raw_registers(
    plant: PlantThread,
) -> None:
    register = Register(table=RegisterTable.INPUT, address=80, type="float32")
    plant.run_sync(lambda: plant.plant.set_registers("input", 80, [0x7FC0, 0x0000]))
    readings = await read_once(
        ModbusSource("plc", tcp(plant.port), {"x": sensor(register)}, DEFAULTS)
    )
    assert readings["x"].quality is Quality.BAD
    assert readings["x"].reason == "not a number"
    assert readings["x"].raw == (0x7FC0, 0x0000)


async def test_the_plan_uses_the_fewest_requests_counted_at_the_server(
    plant: PlantThread,
) -> None:
    # 49 uint16 + 100 float32 + 1 uint16 = 250 contiguous registers that pack exactly into
    # 2 requests of 125 without splitting a float; 40 coils make a third request.
    layout = [("uint16", 1)] * 49 + [("float32", 2)] * 100 + [("uint16", 1)]
    sensors = {}
    values: dict[str, float | int | bool] = {}
    address = COALESCE_BASE
    for i, (kind, width) in enumerate(layout):
        register = Register(table=RegisterTable.HOLDING, address=address, type=kind)
        sensors[f"h{i}"] = sensor(register)
        values[f"h{i}"] = float(i) + 0.5 if kind == "float32" else 1000 + i
        address += width
    for i in range(40):
        register = Register(table=RegisterTable.COIL, address=COALESCE_BASE + i)
        sensors[f"c{i}"] = sensor(register)
        values[f"c{i}"] = i % 3 == 0

    def write() -> None:
        for sid, s in sensors.items():
            assert s.register_ is not None
            plant.plant.write(s.register_, values[sid])

    plant.run_sync(write)
    source = ModbusSource("plc", tcp(plant.port), sensors, DEFAULTS)
    before = plant.plant.requests_for(1)
    readings = await read_once(source)
    requests = plant.plant.requests_for(1) - before
    assert requests == 3
    assert len(naive_plan(source.sensor_addresses).blocks) == 190
    assert {sid: r.value for sid, r in readings.items()} == values


async def test_an_illegal_address_in_a_block_marks_only_its_sensor_bad(
    plant: PlantThread,
) -> None:
    base = ILLEGAL_BASE
    registers = {
        "a": Register(table=RegisterTable.HOLDING, address=base, type="int16"),
        "b": Register(table=RegisterTable.HOLDING, address=base + 2, type="float32"),
        "c": Register(table=RegisterTable.HOLDING, address=base + 5, type="uint32"),  # refused
        "d": Register(table=RegisterTable.HOLDING, address=base + 10, type="uint16"),
        "e": Register(table=RegisterTable.HOLDING, address=base + 20, type="float32"),
    }
    values = {"a": -7, "b": 2.5, "c": 123456, "d": 4242, "e": -0.25}

    def write() -> None:
        for sid, register in registers.items():
            plant.plant.write(register, values[sid])
        plant.plant.add_illegal("holding", base + 6, 1)  # inside c
        plant.plant.add_illegal("holding", base + 15, 1)  # a gap between d and e

    plant.run_sync(write)
    source = ModbusSource(
        "plc", tcp(plant.port), {sid: sensor(r) for sid, r in registers.items()}, DEFAULTS
    )
    try:
        first = by_id(await source.read_once())
        assert first["c"].quality is Quality.BAD
        assert first["c"].reason == ILLEGAL_DATA_ADDRESS
        good = {sid: r.value for sid, r in first.items() if sid != "c"}
        assert good == {k: v for k, v in values.items() if k != "c"}  # nothing shifted
        assert source.refused_sensors == {"c"}

        # The next cycle does not probe again: exactly the planned requests reach the server.
        planned = len(source.plan.blocks)
        before = plant.plant.requests_for(1)
        second = by_id(await source.poll_once())
        assert plant.plant.requests_for(1) - before == planned
        assert second["c"].reason == ILLEGAL_DATA_ADDRESS
        assert {sid: r.value for sid, r in second.items() if sid != "c"} == good
        assert all(second[sid].is_good for sid in good)
    finally:
        await source.close()
        plant.run_sync(plant.plant.clear_illegal)


async def test_a_refused_sensor_is_reprobed_and_rejoins_the_plan(plant: PlantThread) -> None:
    base = REPROBE_BASE
    registers = {
        "a": Register(table=RegisterTable.HOLDING, address=base),
        "b": Register(table=RegisterTable.HOLDING, address=base + 1),
    }
    plant.run_sync(lambda: plant.plant.set_registers("holding", base, [11, 22]))
    plant.run_sync(lambda: plant.plant.add_illegal("holding", base + 1, 1))
    source = ModbusSource(
        "plc",
        tcp(plant.port),
        {sid: sensor(r) for sid, r in registers.items()},
        DEFAULTS,
        reprobe_s=0.0,
    )
    try:
        first = by_id(await source.read_once())
        assert (first["a"].value, first["b"].reason) == (11, ILLEGAL_DATA_ADDRESS)
        plant.run_sync(plant.plant.clear_illegal)
        second = by_id(await source.poll_once())
        assert (second["a"].value, second["b"].value) == (11, 22)
        assert source.refused_sensors == set()
        assert len(source.plan.blocks) == 1
    finally:
        await source.close()
        plant.run_sync(plant.plant.clear_illegal)


async def test_a_dead_unit_is_skipped_while_the_healthy_unit_keeps_its_schedule(
    plant: PlantThread,
) -> None:
    base = DEAD_UNIT_BASE
    plant.run_sync(lambda: plant.plant.set_registers("holding", base, [321]))
    plant.run_sync(lambda: plant.plant.set_registers("holding", base, [654], unit=2))
    register = Register(table=RegisterTable.HOLDING, address=base)
    sensors = {"healthy": sensor(register, unit_id=1), "dead": sensor(register, unit_id=2)}
    connection = tcp(
        plant.port, timeout="150ms", poll="50ms", backoff={"initial": "300ms", "max": "2s"}
    )
    source = ModbusSource("plc", connection, sensors, DEFAULTS, rng=random.Random(3))
    batches: list[dict[str, Reading]] = []

    async def sink(readings: Sequence[Reading]) -> None:
        batches.append(by_id(readings))

    plant.run_sync(lambda: plant.plant.silence_unit(2))
    healthy_before = plant.plant.requests_for(1)
    dead_before = plant.plant.requests_for(2)
    task = asyncio.create_task(source.run(sink))
    try:
        for _ in range(400):
            if len(batches) >= 20:
                break
            await asyncio.sleep(0.02)
        cycles = len(batches)
        healthy_requests = plant.plant.requests_for(1) - healthy_before
        dead_requests = plant.plant.requests_for(2) - dead_before
        assert cycles >= 20
        # Every cycle: the healthy unit read good, the dead one bad "device not responding".
        assert all(b["healthy"].value == 321 and b["healthy"].is_good for b in batches)
        assert all(b["dead"].reason == NOT_RESPONDING for b in batches)
        # The healthy unit was asked once per cycle (plus maybe the cycle in flight) ...
        assert cycles <= healthy_requests <= cycles + 1
        # ... the dead one only now and then, and each probe cost one timeout, no retry.
        assert 1 <= dead_requests <= cycles // 2
        assert source._units[2].timeouts == dead_requests
        # Between two reads of the healthy unit there is at most one request to the dead
        # one: the healthy unit never waits more than one timeout.
        order = [unit for _, unit, _, address, _ in plant.plant.store.log if address == base]
        order = order[order.index(1) :]
        assert all(order[i : i + 2] != [2, 2] for i in range(len(order) - 1)), order

        # The unit comes back: its readings turn good again (backoff max 2 s).
        plant.run_sync(lambda: plant.plant.revive_unit(2))
        seen = len(batches)
        for _ in range(500):
            if any(b["dead"].is_good for b in batches[seen:]):
                break
            await asyncio.sleep(0.02)
        assert any(b["dead"].value == 654 for b in batches[seen:])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        plant.run_sync(lambda: plant.plant.revive_unit(2))


async def test_an_overrun_is_counted_and_cycles_do_not_pile_up(
    plant: PlantThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="edge_agent.sources.modbus.source")
    register = Register(table=RegisterTable.HOLDING, address=0)
    source = ModbusSource("plc", tcp(plant.port, poll="50ms"), {"x": sensor(register)}, DEFAULTS)
    starts: list[float] = []
    overruns_seen: list[int] = []  # source.stats.overruns at each sink call

    async def slow_sink(readings: Sequence[Reading]) -> None:
        starts.append(time.monotonic())
        overruns_seen.append(source.stats.overruns)
        if len(starts) == 2:
            await asyncio.sleep(0.18)  # the consumer stalls for more than three intervals

    task = asyncio.create_task(source.run(slow_sink))
    try:
        for _ in range(300):
            if len(starts) >= 6:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(starts) >= 6
    # The stalled cycle counts one overrun, not one per missed interval (on a loaded
    # machine other cycles may overrun too).
    assert overruns_seen[2] - overruns_seen[1] == 1
    # Logged once (the first overrun), with the fields an operator needs.
    (logged,) = [r for r in caplog.records if r.getMessage() == "poll cycle overran its interval"]
    assert (logged.connection, logged.overruns, logged.interval_s) == ("plc", 1, 0.05)  # type: ignore[attr-defined]
    # No burst of catch-up cycles after the stall: they would come back to back (a cycle
    # takes about a millisecond here). Load may make one cycle follow a late one closely,
    # but a cycle never starts less than an interval after the one two before it ended.
    assert all(b - a >= 0.05 * 0.99 for a, b in zip(starts, starts[2:], strict=False))


RANDOM_ILLEGAL_BASE = 2000  # 2000-2999 holding registers and coils, for the property below
WIDTHS = {"uint16": 1, "int32": 2, "float32": 2, "uint64": 4}


@st.composite
def layouts_with_refused_addresses(
    draw: st.DrawFn,
) -> tuple[str, list[tuple[int, str]], set[int]]:
    """A table, sensors (address, type) with random gaps, and refused addresses anywhere:
    inside a sensor, in a gap, at a block edge."""
    table = draw(st.sampled_from(["holding", "coil"]))
    sensors: list[tuple[int, str]] = []
    address = RANDOM_ILLEGAL_BASE
    for _ in range(draw(st.integers(2, 24))):
        address += draw(st.integers(0, 14))
        kind = "bool" if table == "coil" else draw(st.sampled_from(sorted(WIDTHS)))
        sensors.append((address, kind))
        address += 1 if kind == "bool" else WIDTHS[kind]
    refused = set(draw(st.lists(st.integers(RANDOM_ILLEGAL_BASE, address), max_size=4)))
    return table, sensors, refused


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(layouts_with_refused_addresses())
# Found by this test: a refused sensor in the left half hid a refused gap before the right
# half, and the next cycle probed again.
@example(("coil", [(2000, "bool"), (2001, "bool"), (2003, "bool"), (2004, "bool")], {2000, 2002}))
@example(("holding", [(2000, "float32"), (2010, "uint16"), (2011, "uint64")], {2005, 2012}))
def test_refused_addresses_anywhere_mark_only_their_sensors_and_shift_nothing(
    plant: PlantThread, layout: tuple[str, list[tuple[int, str]], set[int]]
) -> None:
    table, placed, refused = layout
    registers: dict[str, Register] = {}
    values: dict[str, bool | int | float] = {}
    for i, (address, kind) in enumerate(placed):
        sid = f"s{i}"
        registers[sid] = Register(table=RegisterTable(table), address=address, type=kind)
        values[sid] = (i % 2 == 0) if kind == "bool" else (i * 7 + 1) * (1 if i % 3 else -1)
        if kind.startswith("uint"):
            values[sid] = abs(int(values[sid]))

    def arrange() -> None:
        plant.plant.clear_illegal()
        for sid, register in registers.items():
            plant.plant.write(register, values[sid])
        for address in refused:
            plant.plant.add_illegal(table, address, 1)

    def spans(register: Register) -> range:
        return range(register.address, register.address + register.count)

    hit = {sid for sid, r in registers.items() if any(a in refused for a in spans(r))}
    plant.run_sync(arrange)

    async def two_cycles() -> tuple[dict[str, Reading], dict[str, Reading], int, int]:
        source = ModbusSource(
            "plc",
            tcp(plant.port),
            {sid: sensor(r) for sid, r in registers.items()},
            DEFAULTS,
        )
        try:
            first = by_id(await source.read_once())
            planned = len(source.plan.blocks)
            before = plant.plant.requests_for(1)
            second = by_id(await source.poll_once())
            return first, second, planned, plant.plant.requests_for(1) - before
        finally:
            await source.close()

    try:
        first, second, planned, sent = asyncio.run(two_cycles())
    finally:
        plant.run_sync(plant.plant.clear_illegal)
    for readings in (first, second):
        assert {sid for sid, r in readings.items() if not r.is_good} == hit
        assert all(readings[sid].reason == ILLEGAL_DATA_ADDRESS for sid in hit)
        assert {sid: r.value for sid, r in readings.items() if sid not in hit} == {
            sid: v for sid, v in values.items() if sid not in hit
        }
    # What was learnt in the first cycle is not probed again in the second.
    assert sent == planned
