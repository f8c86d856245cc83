"""Fixtures for the Modbus tests: simulated plants served from a background thread.

Each plant runs its own event loop in a thread, so one server can be shared by every test
of a module (sync tests, hypothesis tests and async tests alike) while the clients under
test run in the test's own loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

import pytest

from edge_agent.config.models import Defaults, ModbusRtu, ModbusTcp, Register, Scale, Sensor
from edge_agent.simulators.modbus import ModbusPlant

T = TypeVar("T")


class PlantThread:
    """A :class:`ModbusPlant` running in its own thread and loop."""

    def __init__(self, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.plant: ModbusPlant = self.call(self._make(kwargs))

    async def _make(self, kwargs: dict[str, Any]) -> ModbusPlant:
        plant = ModbusPlant(**kwargs)
        await plant.start()
        return plant

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=30)

    def run_sync(self, fn: Callable[[], T]) -> T:
        """Run a plain function on the plant's loop (to change data between requests)."""

        async def wrapper() -> T:
            return fn()

        return self.call(wrapper())

    @property
    def port(self) -> int:
        return self.plant.port

    def stop(self) -> None:
        self.call(self.plant.stop())

    def start(self) -> None:
        self.call(self.plant.start())

    def close(self) -> None:
        self.call(self.plant.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture(scope="module")
def plant() -> Iterator[PlantThread]:
    """Modbus TCP, units 1 and 2, 4,096 registers per table, profiles off (still values)."""
    served = PlantThread(units=(1, 2), registers=4096, bits=4096, profiles=False)
    try:
        yield served
    finally:
        served.close()


def tcp(port: int, **overrides: Any) -> ModbusTcp:
    return ModbusTcp.model_validate(
        {"protocol": "modbus-tcp", "host": "127.0.0.1", "port": port, **overrides}
    )


def rtu(device: str, **overrides: Any) -> ModbusRtu:
    return ModbusRtu.model_validate({"protocol": "modbus-rtu", "device": device, **overrides})


def sensor(
    register: Register | Mapping[str, Any],
    *,
    unit_id: int | None = None,
    scale: Scale | None = None,
    connection: str = "plc",
) -> Sensor:
    reg = register.model_dump() if isinstance(register, Register) else dict(register)
    data: dict[str, Any] = {"connection": connection, "register": reg}
    if unit_id is not None:
        data["unit_id"] = unit_id
    if scale is not None:
        data["scale"] = scale.model_dump()
    return Sensor.model_validate(data)


DEFAULTS = Defaults()
