"""The simulated Modbus plant: a pymodbus ``SimDevice`` server with scripted profiles and
fault injection, for tests, benchmarks and the demo.

It serves the demo plant (``DEMO_POINTS``, see the demo-plant spec) on unit 1 of Modbus
TCP, RTU over TCP, or RTU on a pyserial ``socket://`` URL (``ModbusSerialServer``). The
datastore is wrapped so that tests can count the requests the server received and inject
faults: address ranges that answer "illegal data address", silent unit ids (no answer at
all, like a dead RTU slave), a value ramp, and a dropped connection (``stop``/``start`` on
the same port).

Usage::

    async with ModbusPlant(port=0) as plant:
        plant.port                              # the port it listens on
        plant.set_value("p101_vibration", 7.5)  # a demo sensor, in engineering units
        plant.set_registers("holding", 100, [1, 2, 3])
        plant.add_illegal("holding", 40, 2)
        plant.silence_unit(2)
        plant.requests                          # requests received so far
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import random
import signal
import socket
import struct
import sys
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from edge_agent.config.models import Register, RegisterTable, RegisterType, Scale
from edge_agent.simulators.control import (
    CONTROL_HOST,
    CannotListen,
    ControlServer,
    MapEntry,
    SetValue,
    add_control_arguments,
    bind_error,
    control_port,
    format_map,
    library_logs_quiet,
    print_control,
)
from edge_agent.sources.modbus.decode import encode_value, unscale

logger = logging.getLogger(__name__)

Transport = Literal["tcp", "rtu-over-tcp", "serial"]
TABLE_CODES: dict[RegisterTable, str] = {
    RegisterTable.COIL: "c",
    RegisterTable.DISCRETE: "d",
    RegisterTable.HOLDING: "h",
    RegisterTable.INPUT: "i",
}
# Read function codes per table, to match a request to its table.
READ_CODES: dict[int, RegisterTable] = {
    1: RegisterTable.COIL,
    2: RegisterTable.DISCRETE,
    3: RegisterTable.HOLDING,
    4: RegisterTable.INPUT,
}


@dataclass(frozen=True)
class PlantPoint:
    """One demo sensor and its normal profile: ``base`` ± ``swing`` (a slow sine + noise)."""

    sensor_id: str
    register: Register
    base: float | bool
    swing: float = 0.0
    scale: Scale | None = None
    unit_id: int = 1
    unit: str = ""  # engineering unit, for the map (``--list``)


DEMO_POINTS: tuple[PlantPoint, ...] = (
    PlantPoint(
        "p101_vibration",
        Register(table=RegisterTable.HOLDING, address=0, type=RegisterType.INT16),
        2.5,
        0.3,
        Scale(factor=0.01),
        unit="mm/s",
    ),
    PlantPoint(
        "p101_pressure",
        Register(table=RegisterTable.HOLDING, address=2, type=RegisterType.FLOAT32),
        4.2,
        0.1,
        unit="bar",
    ),
    PlantPoint(
        "p101_flow",
        Register(
            table=RegisterTable.INPUT,
            address=100,
            type=RegisterType.FLOAT32,
            word_order="little",
        ),
        120.0,
        5.0,
        unit="m3/h",
    ),
    PlantPoint("p101_running", Register(table=RegisterTable.COIL, address=16), True),
    PlantPoint(
        "m201_current",
        Register(table=RegisterTable.HOLDING, address=10, type=RegisterType.UINT16),
        35.0,
        2.0,
        Scale(factor=0.1),
        unit="A",
    ),
    PlantPoint("m201_running", Register(table=RegisterTable.COIL, address=17), True),
)


@dataclass
class _Ramp:
    start: float
    end: float
    started: float
    duration_s: float

    def value(self, now: float) -> float:
        if self.duration_s <= 0:
            return self.end
        done = min(1.0, max(0.0, (now - self.started) / self.duration_s))
        return self.start + (self.end - self.start) * done


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """An ephemeral port that was free a moment ago (the serial server needs one up front)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _FaultyStore:
    """Wraps pymodbus' ``SimCore``: counts requests, answers injected faults, else delegates.

    The server calls ``async_getValues`` once per read request, so its count is the number
    of read requests the server received.
    """

    def __init__(self, core: Any) -> None:
        self.core = core
        self.requests = 0
        self.requests_by_unit: Counter[int] = Counter()
        # (monotonic time, unit, function code, address, count) of recent requests
        self.log: deque[tuple[float, int, int, int, int]] = deque(maxlen=100_000)
        self.silent_units: set[int] = set()
        # (unit, table) -> list of (start, end exclusive, Modbus exception code)
        self.faults: dict[tuple[int, RegisterTable], list[tuple[int, int, int]]] = {}

    def device_ids(self) -> list[int]:
        return list(self.core.device_ids())

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> Any:
        from pymodbus.constants import ExcCodes
        from pymodbus.exceptions import NoSuchIdException

        self.requests += 1
        self.requests_by_unit[device_id] += 1
        self.log.append((time.monotonic(), device_id, func_code, address, count))
        if device_id in self.silent_units or device_id not in self.core.devices:
            # With ignore_missing_devices the server sends nothing: a dead slave.
            raise NoSuchIdException(f"unit {device_id} is silent")
        table = READ_CODES.get(func_code)
        if table is not None:
            for start, end, code in self.faults.get((device_id, table), ()):
                if address < end and start < address + count:
                    return ExcCodes(code)
        return await self.core.async_getValues(device_id, func_code, address, count)

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: list[int] | list[bool]
    ) -> Any:
        return await self.core.async_setValues(device_id, func_code, address, values)


class ModbusPlant:
    """A Modbus server for the demo plant (or any register map), with faults on demand.

    ``units``: unit ids served; ``registers``/``bits``: size of each register/bit table per
    unit (every address in range is readable and starts at 0). ``profiles``: run the demo
    points' scripted profiles every ``tick_s``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        transport: Transport = "tcp",
        units: Sequence[int] = (1,),
        registers: int = 1024,
        bits: int = 1024,
        points: Sequence[PlantPoint] = DEMO_POINTS,
        profiles: bool = True,
        tick_s: float = 0.2,
        seed: int = 1,
    ) -> None:
        self.host = host
        self.port = port
        self.transport = transport
        self.units = tuple(units)
        self.points = {p.sensor_id: p for p in points}
        self.profiles = profiles
        self.tick_s = tick_s
        # Tables always hold the scripted points, whatever size was asked for.
        ends = [p.register.address + p.register.count for p in points]
        bit_ends = [e for p, e in zip(points, ends, strict=True) if p.register.table.is_bits]
        reg_ends = [e for p, e in zip(points, ends, strict=True) if not p.register.table.is_bits]
        self._registers = max([registers, *reg_ends])
        self._bits = max([bits, *bit_ends])
        self._rng = random.Random(seed)
        self._ramps: dict[str, _Ramp] = {}
        self._held: dict[str, float | bool] = {}
        self._server: Any = None
        self._ticker: asyncio.Task[None] | None = None
        self.store = _FaultyStore(self._build_core())
        self.starts = 0
        for point in self.points.values():
            self._write_point(point, point.base)

    # ------------------------------------------------------------------ lifecycle

    def _build_core(self) -> Any:
        from pymodbus.simulator import DataType, SimData, SimDevice
        from pymodbus.simulator.simcore import SimCore

        devices = []
        for unit in self.units:
            bit_block = [SimData(0, count=self._bits, values=False, datatype=DataType.BITS)]
            reg_block = [SimData(0, count=self._registers, values=0, datatype=DataType.REGISTERS)]
            devices.append(
                SimDevice(
                    id=unit,
                    simdata=(list(bit_block), list(bit_block), list(reg_block), list(reg_block)),
                )
            )
        return SimCore(devices)

    @property
    def url(self) -> str:
        """The pyserial URL of a ``serial`` plant (what ``ModbusRtu.device`` should be)."""
        return f"socket://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Listen (again, on the same port after a ``stop``) and start the profiles."""
        from pymodbus import FramerType
        from pymodbus.server import ModbusSerialServer, ModbusTcpServer

        if self._server is not None:
            return
        # The server insists on building its own datastore; it is replaced below.
        devices = self._dummy_devices()
        if self.transport == "serial":
            if not self.port:
                self.port = free_tcp_port(self.host)
            server: Any = ModbusSerialServer(
                devices,
                framer=FramerType.RTU,
                port=self.url,
                ignore_missing_devices=True,
            )
        else:
            framer = FramerType.SOCKET if self.transport == "tcp" else FramerType.RTU
            server = ModbusTcpServer(
                devices,
                framer=framer,
                address=(self.host, self.port),
                ignore_missing_devices=True,
            )
        # The datastore survives restarts: values and counters stay as the test left them.
        server.context = self.store
        await server.serve_forever(background=True)
        if not self.port:
            self.port = int(server.transport.sockets[0].getsockname()[1])
        self._server = server
        self.starts += 1
        if self.profiles and self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_forever(), name="modbus-plant-profiles")
        logger.info(
            "modbus plant listening",
            extra={"host": self.host, "port": self.port, "transport": self.transport},
        )

    def _dummy_devices(self) -> Any:
        from pymodbus.simulator import DataType, SimData, SimDevice

        return SimDevice(id=0, simdata=[SimData(0, count=1, values=0, datatype=DataType.REGISTERS)])

    async def stop(self) -> None:
        """Close the listener and every client connection (the "dropped connection" fault)."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()
            # Let the transports finish closing before a restart binds the port again.
            await asyncio.sleep(0)

    async def close(self) -> None:
        """Stop serving and stop the profiles."""
        await self.stop()
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    async def __aenter__(self) -> ModbusPlant:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ values

    def _runtime(self, unit: int) -> Any:
        return self.store.core.devices[unit]

    def set_registers(self, table: str, address: int, words: Sequence[int], unit: int = 1) -> None:
        """Write raw 16-bit registers of a holding or input table."""
        kind = RegisterTable(table)
        if kind.is_bits:
            raise ValueError(f"{table} holds bits: use set_bits")
        start, size, regs, _ = self._runtime(unit).block[TABLE_CODES[kind]]
        first = address - start
        if first < 0 or first + len(words) > size - 1:
            raise ValueError(f"{table} {address}+{len(words)} is outside the simulated table")
        for i, word in enumerate(words):
            regs[first + i] = int(word) & 0xFFFF

    def get_registers(self, table: str, address: int, count: int, unit: int = 1) -> list[int]:
        kind = RegisterTable(table)
        start, _, regs, _ = self._runtime(unit).block[TABLE_CODES[kind]]
        return [int(r) for r in regs[address - start : address - start + count]]

    def set_bits(self, table: str, address: int, values: Sequence[bool], unit: int = 1) -> None:
        """Write coils or discrete inputs."""
        kind = RegisterTable(table)
        if not kind.is_bits:
            raise ValueError(f"{table} holds registers: use set_registers")
        start, size, regs, _ = self._runtime(unit).block[TABLE_CODES[kind]]
        for i, value in enumerate(values):
            bit_address = address + i
            index = bit_address // 16 - start
            if index < 0 or index >= size - 1:
                raise ValueError(f"{table} bit {bit_address} is outside the simulated table")
            mask = 1 << (bit_address % 16)
            regs[index] = (regs[index] | mask) if value else (regs[index] & ~mask)

    def write(self, register: Register, value: float | int | bool | str, unit: int = 1) -> None:
        """Encode a raw value (no scale) the way ``register`` describes, and store it."""
        if register.table.is_bits:
            self.set_bits(register.table.value, register.address, [bool(value)], unit)
        else:
            self.set_registers(
                register.table.value, register.address, encode_value(register, value), unit
            )

    @staticmethod
    def _raw(point: PlantPoint, value: float) -> float | int:
        raw = unscale(float(value), point.scale)
        if point.register.value_type not in (RegisterType.FLOAT32, RegisterType.FLOAT64):
            return round(raw)
        return raw

    def _write_point(self, point: PlantPoint, value: float | bool) -> None:
        if isinstance(value, bool) or point.register.table.is_bits:
            self.write(point.register, bool(value), point.unit_id)
            return
        self.write(point.register, self._raw(point, value), point.unit_id)

    def check_value(self, sensor_id: str, value: float) -> None:
        """Raise ValueError when ``value`` does not fit the point's register (after scale)."""
        point = self.points[sensor_id]
        try:
            encode_value(point.register, self._raw(point, value))
        except (struct.error, OverflowError, ValueError):
            kind = point.register.value_type.value
            raise ValueError(f"{value:g} cannot be held by its {kind} register") from None

    def set_value(self, sensor_id: str, value: float | bool) -> None:
        """Hold a demo sensor at ``value`` (engineering units) until ``release``."""
        self._ramps.pop(sensor_id, None)
        self._held[sensor_id] = value
        self._write_point(self.points[sensor_id], value)

    def ramp(self, sensor_id: str, to: float, over_s: float) -> None:
        """Move a demo sensor linearly from its normal value to ``to`` over ``over_s``, then
        hold it there (the "value ramping past a limit" fault)."""
        point = self.points[sensor_id]
        self._held.pop(sensor_id, None)
        self._ramps[sensor_id] = _Ramp(float(point.base), to, time.monotonic(), over_s)

    def release(self, sensor_id: str) -> None:
        """Back to the normal profile."""
        self._ramps.pop(sensor_id, None)
        self._held.pop(sensor_id, None)

    async def _tick_forever(self) -> None:
        while True:
            self.tick()
            await asyncio.sleep(self.tick_s)

    def tick(self) -> None:
        """Advance every profile once (called by the profile task)."""
        now = time.monotonic()
        for point in self.points.values():
            if point.sensor_id in self._held:
                continue
            ramp = self._ramps.get(point.sensor_id)
            if ramp is not None:
                self._write_point(point, ramp.value(now))
                continue
            if isinstance(point.base, bool):
                continue
            wave = math.sin(now / 20.0 + len(point.sensor_id)) * 0.7
            noise = self._rng.uniform(-0.3, 0.3)
            self._write_point(point, point.base + point.swing * (wave + noise))

    # ------------------------------------------------------------------ faults

    @property
    def requests(self) -> int:
        """Read requests received since start (or since ``reset_counters``)."""
        return self.store.requests

    def requests_for(self, unit: int) -> int:
        return self.store.requests_by_unit[unit]

    def reset_counters(self) -> None:
        self.store.requests = 0
        self.store.requests_by_unit.clear()
        self.store.log.clear()

    def add_illegal(self, table: str, address: int, count: int = 1, unit: int = 1) -> None:
        """Answer "illegal data address" to any read touching these addresses."""
        self.add_exception(table, address, count, code=2, unit=unit)

    def add_exception(
        self, table: str, address: int, count: int = 1, *, code: int, unit: int = 1
    ) -> None:
        """Answer Modbus exception ``code`` (4: device failure, 6: busy...) to any read
        touching these addresses."""
        key = (unit, RegisterTable(table))
        self.store.faults.setdefault(key, []).append((address, address + count, code))

    def clear_illegal(self) -> None:
        """Remove every injected exception (illegal addresses included)."""
        self.store.faults.clear()

    def silence_unit(self, unit: int) -> None:
        """Never answer this unit id (a dead slave on the bus)."""
        self.store.silent_units.add(unit)

    def revive_unit(self, unit: int) -> None:
        self.store.silent_units.discard(unit)


# ---------------------------------------------------------------------- map and control


def point_map(points: Sequence[PlantPoint] = DEMO_POINTS) -> list[MapEntry]:
    """What the plant serves: one entry per scripted point."""
    entries = []
    for point in points:
        register = point.register
        kind = "bool" if register.table.is_bits else register.value_type.value
        if register.word_order == "little" and register.count > 1:
            kind += " (words little-endian)"
        if point.scale is not None:
            kind += f" x{point.scale.factor:g}"
            if point.scale.offset:
                kind += f" {point.scale.offset:+g}"
        if isinstance(point.base, bool):
            driven = f"fixed {str(point.base).lower()}"
        else:
            driven = f"profile {point.base:g} +-{point.swing:g} (sine and noise)"
        entries.append(
            MapEntry(
                point.sensor_id,
                f"unit {point.unit_id} {register.table.value} {register.address}",
                kind,
                point.unit,
                driven,
            )
        )
    return entries


def control_setter(plant: ModbusPlant) -> SetValue:
    """``simulate set`` on this plant: hold a point at a value, or release it (None)."""

    async def set_value(name: str, value: float | bool | None) -> None:
        point = plant.points[name]  # KeyError: unknown point
        if value is None:
            plant.release(name)
        elif point.register.table.is_bits != isinstance(value, bool):
            raise ValueError(
                "a bit takes true or false"
                if point.register.table.is_bits
                else "a register takes a number"
            )
        else:
            plant.check_value(name, value)
            plant.set_value(name, value)

    return set_value


# ---------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=15020, help="port (0: any free port)")
    parser.add_argument(
        "--transport",
        choices=("tcp", "rtu-over-tcp", "serial"),
        default="tcp",
        help="Modbus TCP, RTU frames over TCP, or RTU on a pyserial socket:// URL",
    )
    parser.add_argument("--units", default="1", help="unit ids served, comma separated")
    parser.add_argument("--registers", type=int, default=1024, help="registers per table")
    parser.add_argument("--no-profiles", action="store_true", help="keep values still")
    add_control_arguments(parser)


async def _serve(args: argparse.Namespace) -> None:
    units = [int(u) for u in str(args.units).split(",") if u.strip()]
    plant = ModbusPlant(
        args.host,
        args.port,
        transport=args.transport,
        units=units,
        registers=args.registers,
        profiles=not args.no_profiles,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with library_logs_quiet():
        try:
            await plant.start()
        except (OSError, RuntimeError) as exc:
            raise bind_error(args.host, args.port, exc) from exc
    try:
        print(f"modbus plant listening on {args.host}:{plant.port} ({args.transport})", flush=True)
        control = ControlServer(
            point_map(), control_setter(plant), CONTROL_HOST, control_port(args, plant.port)
        )
        await control.start()
        print_control(control.port)
        try:
            await stop.wait()
        finally:
            await control.close()
    finally:
        await plant.close()


def run(args: argparse.Namespace) -> int:
    if args.list:
        print(format_map(point_map()))
        return 0
    try:
        asyncio.run(_serve(args))
    except (CannotListen, OSError) as exc:  # OSError: a failure once serving
        print(f"edge-agent simulate modbus: {exc}", file=sys.stderr)
        return 1
    return 0
