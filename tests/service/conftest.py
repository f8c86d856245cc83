"""Fixtures for the service tests: the simulated plant and MaintainX emulator running in a
background event loop, and the agent as a real subprocess (`edge-agent run`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO_ROOT, Broker, free_port

T = TypeVar("T")
API_KEY = "mx-test-key-3c9d1f0a7b2e"


class BackgroundLoop:
    """An asyncio loop in a thread, so simulators keep serving while a test blocks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def run(self, fn: Callable[[], T]) -> T:
        async def wrapper() -> T:
            return fn()

        return self.call(wrapper())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def background() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    try:
        yield loop
    finally:
        loop.close()


@pytest.fixture(scope="module")
def plant(background: BackgroundLoop) -> Iterator[Any]:
    """The demo Modbus plant on a free port, values steady (profiles off) unless set."""
    from edge_agent.simulators.modbus import ModbusPlant

    plant = ModbusPlant(port=0, profiles=False)
    background.call(plant.start())
    try:
        yield plant
    finally:
        background.call(plant.close())


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    """The MaintainX emulator over HTTP on a free loopback port, knowing our API key."""
    from edge_agent.demo.plant import seed_demo_assets
    from edge_agent.simulators.maintainx import Emulator

    emu = Emulator(keys={API_KEY: 1}, rate_limiting=False)
    emu.start()
    seed_demo_assets(emu)
    try:
        yield emu
    finally:
        emu.stop()


def work_orders(emulator: Any) -> list[dict[str, Any]]:
    return list(emulator.work_orders)


def orders_for(emulator: Any, asset_id: int, before: set[int]) -> list[dict[str, Any]]:
    """The emulator's work orders for ``asset_id`` not among the ids in ``before``."""
    return [
        wo
        for wo in work_orders(emulator)
        if wo.get("assetId") == asset_id and wo["id"] not in before
    ]


NORMAL_VALUES = {"p101_vibration": 2.5, "m201_current": 35.0}
"""Plant values that keep every rule of :func:`site_document` normal."""


@contextlib.contextmanager
def steady_plant(background: BackgroundLoop, plant: Any) -> Iterator[None]:
    """Every sensor at its normal value for the block, and again after it (the plant is
    shared by the module's tests)."""

    def settle() -> None:
        for name, value in NORMAL_VALUES.items():
            background.run(lambda n=name, v=value: plant.set_value(n, v))

    settle()
    try:
        yield
    finally:
        settle()


def site_document(
    *,
    modbus_port: int,
    health_port: int,
    storage: Path,
    forwarding: dict[str, Any],
    vibration_limit: float = 7.1,
    extra_rules: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A small site on the demo plant's Modbus points (JSON is YAML)."""
    rules: list[dict[str, Any]] = [
        {
            "id": "p101-vibration-high",
            "asset": "P-101",
            "sensor": "p101_vibration",
            "high": {"limit": vibration_limit, "deadband": 0.3},
            "on_delay": "500ms",
            "off_delay": "2s",
            "priority": "MEDIUM",
            "escalate": [{"above": 20, "priority": "HIGH"}],
            "work_order": {"title": "{asset.name}: vibration {value:.2f} {unit}"},
        },
        {
            "id": "m201-current-high",
            "asset": "M-201",
            "sensor": "m201_current",
            "high": {"limit": 60, "deadband": 2},
            "priority": "HIGH",
            "work_order": {"title": "{asset.name}: current {value:.1f} {unit}"},
        },
        *(extra_rules or []),
    ]
    return {
        "version": 1,
        "site": {"id": "test-plant", "name": "Service test plant"},
        "defaults": {"poll": "250ms", "stale_after": "10s"},
        "connections": {
            "plc1": {
                "protocol": "modbus-tcp",
                "host": "127.0.0.1",
                "port": modbus_port,
                "unit_id": 1,
                "timeout": "500ms",
                "backoff": {"initial": "100ms", "max": "1s"},
            }
        },
        "assets": {
            "P-101": {"maintainx_id": 1001, "name": "Cooling-water pump P-101"},
            "M-201": {"maintainx_id": 1002, "name": "Conveyor motor M-201"},
        },
        "sensors": {
            "p101_vibration": {
                "connection": "plc1",
                "register": {"table": "holding", "address": 0, "type": "int16"},
                "scale": {"factor": 0.01},
                "unit": "mm/s",
            },
            "m201_current": {
                "connection": "plc1",
                "register": {"table": "holding", "address": 10, "type": "uint16"},
                "scale": {"factor": 0.1},
                "unit": "A",
            },
            "p101_running": {
                "connection": "plc1",
                "register": {"table": "coil", "address": 16, "type": "bool"},
            },
        },
        "rules": rules,
        "forwarding": forwarding,
        "storage": {"path": str(storage)},
        "health": {"listen": f"127.0.0.1:{health_port}"},
    }


def maintainx_forwarding(emulator: Any) -> dict[str, Any]:
    return {
        "mode": "maintainx",
        "maintainx": {
            "base_url": emulator.url,
            "api_key": "${MAINTAINX_API_KEY}",
            "timeout": "2s",
            "backoff": {"initial": "100ms", "max": "1s"},
        },
    }


def mqtt_forwarding(broker: Broker, **settings: Any) -> dict[str, Any]:
    """Forwarding to ``broker`` with a quick backoff; ``settings`` add to or override it."""
    mqtt = {"host": "127.0.0.1", "port": broker.port, "backoff": {"initial": "100ms", "max": "1s"}}
    return {"mode": "mqtt", "mqtt": {**mqtt, **settings}}


def direct_site(plant: Any, emulator: Any, health_port: int, tmp_path: Path) -> dict[str, Any]:
    """:func:`site_document` on ``plant``, forwarding straight to ``emulator``, state in
    ``tmp_path / "state"``."""
    return site_document(
        modbus_port=plant.port,
        health_port=health_port,
        storage=tmp_path / "state",
        forwarding=maintainx_forwarding(emulator),
    )


def write_site(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def holds(condition: Callable[[], Any], seconds: float, what: str = "condition") -> None:
    """Assert ``condition()`` at every check for ``seconds`` (proving an absence, such as
    no second work order)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition(), f"{what} stopped holding"
        time.sleep(0.1)


def wait_until(condition: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class AgentProcess:
    """`edge-agent run SITE --state-dir DIR` as a subprocess, logs to a file."""

    def __init__(self, site: Path, state_dir: Path, health_port: int, log_path: Path) -> None:
        self.site = site
        self.state_dir = state_dir
        self.health_port = health_port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        # What runs the `edge-agent` command line (a test may wrap it, see crash_agent.py).
        self.launcher: list[str] = [sys.executable, "-m", "edge_agent"]
        self.env = {
            **os.environ,
            "MAINTAINX_API_KEY": API_KEY,
            "PYTHONPATH": str(REPO_ROOT),
        }
        self.env.pop("NOTIFY_SOCKET", None)

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *self.launcher,
                    "run",
                    str(self.site),
                    "--state-dir",
                    str(self.state_dir),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**self.env, **(extra_env or {})},
                cwd=self.site.parent,
            )

    def get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.health_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def json(self, path: str) -> tuple[int, dict[str, Any]]:
        status, body = self.get(path)
        return status, (json.loads(body) if body else {})

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body = self.get("/metrics")
        assert status == 200, body
        out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    def metric(self, name: str, **labels: str) -> float | None:
        return self.metrics().get((name, tuple(sorted(labels.items()))))

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            assert self.alive(), f"agent exited early:\n{self.logs()[-4000:]}"
            status, body = self.json("/readyz")
            return body if status == 200 else None

        return wait_until(ready, timeout, "the agent to be ready")

    def wait_serving(self, timeout: float = 30.0) -> None:
        """Wait until /healthz answers (the agent runs, ready or not)."""

        def serving() -> bool:
            assert self.alive(), f"agent exited early:\n{self.logs()[-4000:]}"
            return self.get("/healthz")[0] == 200

        wait_until(serving, timeout, "the agent to serve /healthz")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def make_agent(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], AgentProcess]]:
    """Write a site file and return a (not yet started) agent for it."""
    agents: list[AgentProcess] = []

    def factory(document: dict[str, Any]) -> AgentProcess:
        port = int(document["health"]["listen"].rsplit(":", 1)[1])
        site = write_site(tmp_path / "site.yaml", document)
        agent = AgentProcess(site, tmp_path / "state", port, tmp_path / "agent.log")
        agents.append(agent)
        return agent

    yield factory
    for agent in agents:
        agent.kill()


@pytest.fixture
def health_port() -> int:
    return free_port()


def hub_document(
    tmp_path: Path, broker: Broker, emulator: Any, *, webhooks: bool
) -> dict[str, Any]:
    """A hub for the site ``test-plant`` on ``broker``, creating work orders at ``emulator``;
    with ``webhooks`` it also listens for MaintainX's status webhooks."""
    document: dict[str, Any] = {
        "version": 1,
        "hub": {"id": "hub-test", "retry_interval": "500ms"},
        "broker": {
            "host": "127.0.0.1",
            "port": broker.port,
            "backoff": {"initial": "100ms", "max": "1s"},
        },
        "sites": {"test-plant": {"api_key": "${HUB_TEST_PLANT_KEY}"}},
        "maintainx": {"base_url": emulator.url, "timeout": "2s"},
        "state_dir": str(tmp_path / "hub-state"),
        "health": {"listen": f"127.0.0.1:{free_port()}"},
    }
    if webhooks:
        url = f"http://127.0.0.1:{free_port()}/maintainx/webhooks"
        document["webhooks"] = {"listen": url.split("/")[2], "public_url": url}
    return document


@contextlib.contextmanager
def hub_process(tmp_path: Path, document: dict[str, Any]) -> Iterator[subprocess.Popen[bytes]]:
    """`edge-agent hub` as a subprocess (registering its webhooks first if it has any),
    running once it says so."""
    hub_file = tmp_path / "hub.yaml"
    hub_file.write_text(json.dumps(document))
    log_path = tmp_path / "hub.log"
    command = [sys.executable, "-m", "edge_agent", "hub", str(hub_file)]
    if "webhooks" in document:
        command.append("--register-webhooks")
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=log,
            env={**os.environ, "HUB_TEST_PLANT_KEY": API_KEY, "PYTHONPATH": str(REPO_ROOT)},
        )
    try:

        def running() -> bool:
            assert process.poll() is None, log_path.read_text()[-4000:]
            return " running" in log_path.read_text()

        wait_until(running, 30, "the hub to run")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def hub(tmp_path: Path, mosquitto: Broker, emulator: Any) -> Iterator[subprocess.Popen[bytes]]:
    """The hub between mosquitto and the emulator (no webhooks)."""
    with hub_process(tmp_path, hub_document(tmp_path, mosquitto, emulator, webhooks=False)) as hub:
        yield hub
