"""Helpers for the OPC UA source tests: connections, plant sensors, a reading collector.

Each test module starts ONE simulator (asyncua's server init costs seconds) with a
module-scoped event loop, and every test in it runs on that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from edge_agent.config.models import Defaults, OpcUa, Sensor
from edge_agent.readings import Quality, Reading
from edge_agent.sources.opcua.source import OpcUaSource

PLANT = {
    "p101_bearing_temp": "Line1.P101.BearingTemp",
    "m201_winding_temp": "Line1.M201.WindingTemp",
    "m201_vibration": "Line1.M201.Vibration",
}


def connection(endpoint: str, **overrides: Any) -> OpcUa:
    """An ``opcua`` connection with short timings, as a site file would give it."""
    data: dict[str, Any] = {
        "protocol": "opcua",
        "endpoint": endpoint,
        "poll": "100ms",
        "timeout": "2s",
        "backoff": {"initial": "100ms", "max": "400ms"},
    }
    data.update(overrides)
    return OpcUa.model_validate(data)


def plant_sensors(extra: dict[str, str] | None = None) -> dict[str, Sensor]:
    """The demo plant's OPC UA sensors, plus ``extra`` {sensor_id: node id}."""
    sensors = {sid: Sensor(connection="ua1", node=f"ns=2;s={name}") for sid, name in PLANT.items()}
    for sid, node in (extra or {}).items():
        sensors[sid] = Sensor(connection="ua1", node=node)
    return sensors


def make_source(
    conn: OpcUa, sensors: dict[str, Sensor] | None = None, base_dir: Path = Path()
) -> OpcUaSource:
    return OpcUaSource("ua1", conn, sensors or plant_sensors(), Defaults(), base_dir)


def by_id(readings: Sequence[Reading]) -> dict[str, Reading]:
    return {r.sensor_id: r for r in readings}


class Collector:
    """A ``ReadingSink`` that keeps every batch; tests wait on it with bounded polling."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.batches = 0

    async def __call__(self, batch: Sequence[Reading]) -> None:
        self.readings.extend(batch)
        self.batches += 1

    def mark(self) -> int:
        return len(self.readings)

    async def wait_for(
        self, predicate: Callable[[Reading], bool], since: int = 0, timeout_s: float = 15.0
    ) -> Reading:
        """The first reading after index ``since`` that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout_s
        checked = since
        while time.monotonic() < deadline:
            for reading in self.readings[checked:]:
                if predicate(reading):
                    return reading
            checked = max(checked, len(self.readings))
            await asyncio.sleep(0.02)
        raise AssertionError(f"no matching reading within {timeout_s}s; last: {self.readings[-3:]}")

    async def wait_all(
        self, sensor_ids: Sequence[str], predicate: Callable[[Reading], bool], since: int = 0
    ) -> dict[str, Reading]:
        """One matching reading for each of ``sensor_ids``."""
        found: dict[str, Reading] = {}
        for sensor_id in sensor_ids:
            found[sensor_id] = await self.wait_for(
                lambda r, s=sensor_id: r.sensor_id == s and predicate(r), since
            )
        return found


async def wait_until(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(source: OpcUaSource, sink: Collector) -> AsyncIterator[OpcUaSource]:
    """``source.run(sink)`` in a task for the duration of the block."""
    task = asyncio.create_task(source.run(sink))
    try:
        yield source
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def is_good(r: Reading) -> bool:
    return r.quality is Quality.GOOD


class SimulatorThread:
    """An :class:`OpcUaSimulator` on its own loop in a thread, for tests that run the
    ``edge-agent`` command line (it calls ``asyncio.run`` itself)."""

    def __init__(self, **kwargs: Any) -> None:
        from edge_agent.simulators.opcua import OpcUaSimulator

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.simulator = OpcUaSimulator(**kwargs)
        self.call(self.simulator.start())

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the simulator's loop and return its result."""
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=60)

    def close(self) -> None:
        self.call(self.simulator.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
