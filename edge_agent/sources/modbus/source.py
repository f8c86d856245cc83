"""``ModbusSource``: one Modbus TCP device/gateway or one RTU bus, polled on a schedule.

One pymodbus client serializes its requests behind one lock, so a unit id that never
answers costs ``timeout × (retries + 1)`` on every request it is sent. This source keeps
that cost to one timeout: a unit that times out is skipped (its sensors read bad, "device
not responding") with exponential backoff and jitter, while the other units keep their
schedule. Reconnects use the same backoff; the plan (see :mod:`.plan`) coalesces
registers into few requests, and a block the device refuses ("illegal data address") is
bisected so that only the refused sensors read bad, and those are left out of the plan
until a rare re-probe. The plan learnt that way is tried within the same cycle, so the
cycles after a probe send only their plan.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_agent.common.backoff import Backoff, OutageLog, probe_cap_s
from edge_agent.common.cancellation import stop_if_cancelled
from edge_agent.common.time_units import NS_PER_S
from edge_agent.config.models import (
    Defaults,
    ModbusRtu,
    ModbusTcp,
    RegisterTable,
    Sensor,
)
from edge_agent.interfaces import ConnectionStats, ReadingSink
from edge_agent.readings import Reading, bad
from edge_agent.sources.modbus.block_decode import MAX_CACHED_DECODERS, BlockDecoders
from edge_agent.sources.modbus.client import (
    EXCEPTION_NAMES,
    GATEWAY_SILENT,
    ILLEGAL_DATA_ADDRESS,
    READ_METHODS,
    Answer,
    ConnectionLost,
    UnitSilent,
    connection_exception,
    describe_target,
    io_exception,
    make_client,
)
from edge_agent.sources.modbus.decode import Decoder, compile_decoder
from edge_agent.sources.modbus.logger import logger
from edge_agent.sources.modbus.plan import (
    BlockRead,
    Limits,
    Plan,
    SensorAddress,
)
from edge_agent.sources.modbus.refused import RefusedAddresses

NOT_RESPONDING = "device not responding"
# A device that refused an address is asked again this rarely.
DEFAULT_REPROBE_S = 600.0
# After a cycle that learnt refused addresses, the new plan's unread blocks are read in
# the same cycle (at most this many rounds), so the next cycle repeats no probe.
VERIFY_ROUNDS = 3
# Cycles in a row with requests sent and not one answer before the link is rebuilt.
SILENT_CYCLES_BEFORE_RECONNECT = 3
OVERRUN_LOG_EVERY_S = 60.0


@dataclass
class _UnitState:
    backoff: Backoff
    skip_until: float = 0.0
    timeouts: int = 0
    failing: bool = False  # its last request timed out


@dataclass
class _Cycle:
    """What one cycle collected, keyed by sensor id."""

    readings: dict[str, Reading] = field(default_factory=dict)
    requests: int = 0
    answers: int = 0
    # (unit, table, address, count) of every request answered with data this cycle
    read_ok: set[tuple[int, RegisterTable, int, int]] = field(default_factory=set)


class ModbusSource:
    """Polls one Modbus connection (``ModbusTcp`` or ``ModbusRtu``) and its sensors.

    Implements :class:`edge_agent.interfaces.Source`. Construction does no I/O.
    """

    def __init__(
        self,
        name: str,
        connection: ModbusTcp | ModbusRtu,
        sensors: Mapping[str, Sensor],
        defaults: Defaults,
        *,
        reprobe_s: float = DEFAULT_REPROBE_S,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.connection = connection
        self.stats = ConnectionStats()
        self._addresses: dict[str, SensorAddress] = {}
        self._decoders: dict[str, Decoder] = {}
        scales = {sensor_id: sensor.scale for sensor_id, sensor in sensors.items()}
        self._block_decoders = BlockDecoders(self._decoders, scales)
        for sensor_id, sensor in sensors.items():
            if sensor.register_ is None:
                raise ValueError(f"sensor {sensor_id} has no `register:`; it is not Modbus")
            unit_id = sensor.unit_id if sensor.unit_id is not None else connection.unit_id
            self._addresses[sensor_id] = SensorAddress(sensor_id, unit_id, sensor.register_)
            self._decoders[sensor_id] = compile_decoder(sensor.register_, sensor.scale)
        self._sensor_ids = list(self._addresses)
        self._limits = Limits(connection.max_gap, connection.max_registers, connection.max_bits)
        self.interval_s = (connection.poll or defaults.poll) / NS_PER_S
        self._timeout_s = connection.timeout / NS_PER_S
        self._request_delay_s = connection.request_delay / NS_PER_S
        self._reprobe_s = reprobe_s
        self._rng = rng or random.Random()
        self._reconnect = Backoff.from_config(connection.backoff, self._rng)
        # Connects are cheap: their backoff is capped so a returning PLC is seen quickly;
        # failing reads of a connected device keep the full per-unit backoff.
        self._probe_cap_s = probe_cap_s(self.interval_s)
        self._units: dict[int, _UnitState] = {}
        self._refusals = RefusedAddresses(self._addresses, self._limits)
        # sensor id -> monotonic time of its next re-probe (the same dict, read per reading)
        self._refused = self._refusals.retry_at
        self._learnt = False  # the plan changed during the current cycle
        self._client: Any = None
        self._next_connect_at = 0.0
        self._down_reason = "not connected yet"
        self._outage = OutageLog()
        self._last_request_end = 0.0
        self._silent_cycles = 0
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ public

    @property
    def plan(self) -> Plan:
        """The plan the next cycle sends (sensors refused by the device left out)."""
        return self._refusals.plan

    def set_plan(self, plan: Plan) -> None:
        """Replace the plan (benchmarks measure against :func:`.plan.naive_plan`)."""
        self._refusals.set_plan(plan)
        self._block_decoders.clear()

    @property
    def sensor_addresses(self) -> list[SensorAddress]:
        """Every sensor's unit id and register, in configuration order."""
        return list(self._addresses.values())

    @property
    def refused_sensors(self) -> set[str]:
        """Sensors the device answered "illegal data address" for."""
        return set(self._refused)

    async def run(self, sink: ReadingSink) -> None:
        """Poll every interval until cancelled; never raises for I/O failures."""
        next_start = time.monotonic()
        next_overrun_log = 0.0
        try:
            while True:
                readings = await self.poll_once()
                # pymodbus awaits its answers inside wait_for too: a cancellation it gave up
                # during the cycle ends the loop here (see _ensure_connected).
                stop_if_cancelled()
                await sink(readings)
                next_start += self.interval_s
                now = time.monotonic()
                if now > next_start:
                    # Skip the boundaries already missed: no burst of catch-up cycles.
                    missed = math.ceil((now - next_start) / self.interval_s)
                    next_start += missed * self.interval_s
                    self.stats.overruns += 1
                    if now >= next_overrun_log:  # counted always, logged once a minute
                        next_overrun_log = now + OVERRUN_LOG_EVERY_S
                        logger.warning(
                            "poll cycle overran its interval",
                            extra={
                                "connection": self.name,
                                "interval_s": self.interval_s,
                                "cycle_s": self.stats.last_latency_s,
                                "overruns": self.stats.overruns,
                            },
                        )
                await asyncio.sleep(max(0.0, next_start - now))
        finally:
            await self.close()

    async def read_once(self) -> list[Reading]:
        """Connect (one attempt), read every sensor once, return one reading each."""
        self._next_connect_at = 0.0
        return await self.poll_once()

    async def poll_once(self) -> list[Reading]:
        """One poll cycle: a reading for every sensor, in configuration order."""
        async with self._lock:
            started = time.monotonic()
            cycle = _Cycle()
            try:
                if await self._ensure_connected():
                    await self._read_all(cycle)
                else:
                    # A cycle with the link down is a failed read too: its sensors read bad.
                    self.stats.read_errors += 1
            except Exception as exc:  # a bug here must cost readings, not the agent
                logger.exception("modbus poll cycle failed", extra={"connection": self.name})
                self.stats.read_errors += 1
                await self._drop_connection(f"internal error: {type(exc).__name__}: {exc}")
            readings = cycle.readings
            if len(readings) == len(self._sensor_ids) and list(readings) == self._sensor_ids:
                # Every sensor read, collected in configuration order (one block, the usual
                # case): the map's values are the answer as they are.
                out = list(readings.values())
            else:
                now_ns = time.time_ns()
                out = [
                    readings.get(sid) or bad(sid, self._down_reason, now_ns)
                    for sid in self._addresses
                ]
            self.stats.last_latency_s = time.monotonic() - started
            return out

    async def close(self) -> None:
        """Close the transport (idempotent)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
        self.stats.connected = False

    def reload_credentials(self) -> None:
        """Modbus carries no credentials: nothing to read again."""

    # ------------------------------------------------------------------ connection

    async def _ensure_connected(self) -> bool:
        if self._client is not None and self._client.connected:
            return True
        now = time.monotonic()
        if now < self._next_connect_at:
            return False
        await self.close()
        self.stats.connect_attempts += 1
        client = make_client(self.name, self.connection, self._timeout_s)
        try:
            try:
                ok = bool(await client.connect())
            except Exception as exc:  # pyserial raises its own errors for bad device paths
                logger.debug("connect raised", extra={"connection": self.name, "error": str(exc)})
                ok = False
            # pymodbus connects inside wait_for, which may give up a cancellation (3.11).
            stop_if_cancelled()
        except asyncio.CancelledError:
            client.close()
            raise
        if ok:
            self._client = client
            self.stats.connected = True
            logger.info("modbus connected", extra={"connection": self.name})
            self._outage.ended()
            return True
        client.close()
        self._schedule_reconnect(f"cannot connect to {describe_target(self.connection)}")
        return False

    def _schedule_reconnect(self, reason: str) -> None:
        delay = self._reconnect.next_delay_within(self._probe_cap_s)
        self._next_connect_at = time.monotonic() + delay
        self._down_reason = reason
        self.stats.connected = False
        self.stats.last_error = reason
        logger.log(
            self._outage.level(time.monotonic()),
            "modbus connection down",
            extra={
                "connection": self.name,
                "reason": reason,
                "retry_in_s": round(delay, 3),
                "failed_attempts": self._outage.failures,
            },
        )

    async def _drop_connection(self, reason: str) -> None:
        await self.close()
        self._schedule_reconnect(reason)

    # ------------------------------------------------------------------ one cycle

    async def _read_all(self, cycle: _Cycle) -> None:
        now = time.monotonic()
        for sensor_id, retry_at in self._refused.items():
            if retry_at > now:
                cycle.readings[sensor_id] = bad(sensor_id, ILLEGAL_DATA_ADDRESS, time.time_ns())
        due = [sid for sid, retry_at in self._refused.items() if retry_at <= now]
        blocks = list(self.plan.blocks)
        for sensor_id in due:
            blocks.append(self._refusals.probe(sensor_id))
        self._learnt = False
        try:
            await self._read_blocks(blocks, cycle)
            await self._verify_new_plan(cycle)
        except ConnectionLost as exc:
            await self._drop_connection(f"connection lost: {exc}")
            return
        if cycle.requests and not cycle.answers:
            self._silent_cycles += 1
            if self._silent_cycles >= SILENT_CYCLES_BEFORE_RECONNECT:
                self._silent_cycles = 0
                await self._drop_connection("no unit answered; rebuilding the connection")
        elif cycle.answers:
            self._silent_cycles = 0
            self._reconnect.reset()

    async def _read_blocks(self, blocks: Sequence[BlockRead], cycle: _Cycle) -> None:
        # Units that answered last time go first: a probe of a silent one (one timeout)
        # then delays nothing else in this cycle.
        units = sorted({b.unit_id for b in blocks}, key=lambda u: (self._is_failing(u), u))
        for unit_id in units:
            await self._read_unit(unit_id, [b for b in blocks if b.unit_id == unit_id], cycle)

    async def _verify_new_plan(self, cycle: _Cycle) -> None:
        """Read, in this cycle, the blocks of a plan that changed during it and that no
        request of this cycle covered exactly.

        Bisection proves a gap refused only when both halves read; when a half held a
        refused sensor too, the next plan may read across a gap nobody tried yet. Trying
        it now keeps the promise that a cycle after a probe sends only its plan."""
        for _ in range(VERIFY_ROUNDS):
            if not self._learnt:
                return
            self._learnt = False
            pending = [
                b
                for b in self.plan.blocks
                if (b.unit_id, b.table, b.address, b.count) not in cycle.read_ok
                and not self._is_failing(b.unit_id)
            ]
            if not pending:
                return
            await self._read_blocks(pending, cycle)

    def _is_failing(self, unit_id: int) -> bool:
        state = self._units.get(unit_id)
        return state is not None and state.failing

    async def _read_unit(self, unit_id: int, blocks: list[BlockRead], cycle: _Cycle) -> None:
        state = self._units.get(unit_id)
        if state is None:
            state = self._units[unit_id] = _UnitState(
                Backoff.from_config(self.connection.backoff, self._rng)
            )
        if time.monotonic() < state.skip_until:
            self._mark(blocks, NOT_RESPONDING, cycle)
            return
        for i, block in enumerate(blocks):
            try:
                await self._read_resolving(block, cycle)
            except UnitSilent:
                state.timeouts += 1
                state.failing = True
                delay = state.backoff.next_delay()
                state.skip_until = time.monotonic() + delay
                logger.warning(
                    "modbus unit not responding; skipping it",
                    extra={
                        "connection": self.name,
                        "unit_id": unit_id,
                        "timeouts": state.timeouts,
                        "retry_in_s": round(delay, 3),
                    },
                )
                self._mark(blocks[i:], NOT_RESPONDING, cycle)
                return
        state.backoff.reset()
        state.failing = False

    def _mark(self, blocks: Sequence[BlockRead], reason: str, cycle: _Cycle) -> None:
        now_ns = time.time_ns()
        for block in blocks:
            for planned in block.sensors:
                cycle.readings.setdefault(planned.sensor_id, bad(planned.sensor_id, reason, now_ns))

    async def _read_resolving(self, block: BlockRead, cycle: _Cycle) -> bool:
        """Read a block; on "illegal data address" bisect it to find the refused sensors.

        Returns True when the block was read in one request.
        """
        answer = await self._request(block, cycle)
        if answer.exception_code is None:
            # Straight into the cycle's map: no list of the block's readings in between.
            self._block_decoders.decode_into(block, answer.data, answer.time_ns, cycle.readings)
            if self._refused:
                for planned in block.sensors:
                    if self._refused.pop(planned.sensor_id, None) is not None:
                        self._replan()  # a re-probe succeeded: the sensor rejoins the plan
            return True
        code = answer.exception_code
        if code in GATEWAY_SILENT:
            raise UnitSilent(EXCEPTION_NAMES[code])
        if code != 2:
            reason = f"exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})"
            for planned in block.sensors:
                cycle.readings[planned.sensor_id] = bad(planned.sensor_id, reason, answer.time_ns)
            return False
        if len(block.sensors) == 1:
            sensor_id = block.sensors[0].sensor_id
            if sensor_id not in self._refused:
                logger.warning(
                    "device refused a sensor's address; leaving it out of the plan",
                    extra={
                        "connection": self.name,
                        "sensor": sensor_id,
                        "unit_id": block.unit_id,
                        "table": block.table.value,
                        "address": block.address,
                    },
                )
            self._refused[sensor_id] = time.monotonic() + self._reprobe_s
            self._replan()
            cycle.readings[sensor_id] = bad(sensor_id, ILLEGAL_DATA_ADDRESS, answer.time_ns)
            return False
        half = len(block.sensors) // 2
        left = block.subset(block.sensors[:half])
        right = block.subset(block.sensors[half:])
        left_ok = await self._read_resolving(left, cycle)
        right_ok = await self._read_resolving(right, cycle)
        if left_ok and right_ok:
            # Both halves read on their own: the refused address lies in the gap between.
            self._refusals.add_barrier(block.unit_id, block.table, right.address)
            self._replan()
        return False

    def _replan(self) -> None:
        self._refusals.forget_plan()
        self._block_decoders.clear()
        self._learnt = True

    async def _request(self, block: BlockRead, cycle: _Cycle) -> Answer:
        client = self._client
        if client is None:
            raise ConnectionLost("not connected")
        if self._request_delay_s:
            wait = self._last_request_end + self._request_delay_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        method = getattr(client, READ_METHODS[block.table])
        self.stats.requests += 1
        cycle.requests += 1
        try:
            response = await method(block.address, count=block.count, device_id=block.unit_id)
        except connection_exception() as exc:
            self.stats.read_errors += 1
            raise ConnectionLost(str(exc)) from exc
        except io_exception() as exc:
            self.stats.read_errors += 1
            if not client.connected:
                raise ConnectionLost("transport closed") from exc
            raise UnitSilent(str(exc)) from exc
        finally:
            self._last_request_end = time.monotonic()
        now_ns = time.time_ns()
        cycle.answers += 1
        if response.isError():
            self.stats.read_errors += 1
            return Answer(now_ns, exception_code=int(response.exception_code))
        if block.table.is_bits:
            data = tuple(int(bool(b)) for b in response.bits[: block.count])
        else:
            data = tuple(response.registers)  # ints already: no per-register conversion
        if len(data) < block.count:
            self.stats.read_errors += 1
            raise UnitSilent(f"short response: {len(data)} of {block.count}")
        self.stats.reads += 1
        self.stats.last_good_read_ns = now_ns
        cycle.read_ok.add((block.unit_id, block.table, block.address, block.count))
        return Answer(now_ns, data)


# Names that lived here before the client and the decoder cache had modules of their own;
# importers (tests, the bench) still find them here.
__all__ = [
    "EXCEPTION_NAMES",
    "GATEWAY_SILENT",
    "ILLEGAL_DATA_ADDRESS",
    "MAX_CACHED_DECODERS",
    "NOT_RESPONDING",
    "READ_METHODS",
    "ModbusSource",
]
