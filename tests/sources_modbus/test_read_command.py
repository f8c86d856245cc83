"""`edge-agent read` against the simulated plant on free loopback ports."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from edge_agent.cli import main
from tests.conftest import REPO_ROOT, free_port

from .conftest import PlantThread

DEMO_SITE = REPO_ROOT / "configs" / "demo" / "site.yaml"
MODBUS_SENSORS = (
    "p101_vibration",
    "p101_pressure",
    "p101_flow",
    "p101_running",
    "m201_current",
    "m201_running",
)
OPCUA_SENSORS = ("p101_bearing_temp", "m201_winding_temp", "m201_vibration")


class OpcUaThread:
    """The OPC UA simulator of the demo plant, in its own thread and loop."""

    def __init__(self) -> None:
        from edge_agent.simulators.opcua import OpcUaSimulator

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.simulator = OpcUaSimulator(port=free_port())
        self._call(self.simulator.start())

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=60)

    def close(self) -> None:
        self._call(self.simulator.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture(scope="module")
def demo_modbus() -> Iterator[PlantThread]:
    served = PlantThread()  # the demo plant's points on unit 1, profiles running
    try:
        yield served
    finally:
        served.close()


@pytest.fixture(scope="module")
def demo_opcua() -> Iterator[OpcUaThread]:
    served = OpcUaThread()
    try:
        yield served
    finally:
        served.close()


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # The demo site's forwarding section names this secret; `read` never sends anything.
    monkeypatch.setenv("MAINTAINX_API_KEY", "test-key-not-used")


def demo_copy(tmp_path: Path, modbus_port: int, opcua_port: int | None) -> Path:
    """configs/demo/site.yaml with the simulators' ports (and without OPC UA if None)."""
    text = DEMO_SITE.read_text()
    assert "port: 15020" in text and "127.0.0.1:14840/" in text
    text = text.replace("port: 15020", f"port: {modbus_port}")
    if opcua_port is not None:
        text = text.replace("127.0.0.1:14840/", f"127.0.0.1:{opcua_port}/")
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def test_read_on_the_demo_plant_prints_every_sensor_good(
    tmp_path: Path,
    demo_modbus: PlantThread,
    demo_opcua: OpcUaThread,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site = demo_copy(tmp_path, demo_modbus.port, demo_opcua.simulator.port)
    code = main(["read", str(site)])
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(lines) == set(MODBUS_SENSORS + OPCUA_SENSORS), out
    assert all(" good " in line for line in lines.values()), out
    assert code == 0
    # Raw registers are shown as the words a Modbus tool would show.
    assert "[" in lines["p101_pressure"] and "bar" in lines["p101_pressure"]
    assert lines["p101_running"].endswith("[1]")  # a coil shows as a bit, not a word


def test_read_json_for_one_sensor(
    tmp_path: Path, demo_modbus: PlantThread, capsys: pytest.CaptureFixture[str]
) -> None:
    site = demo_copy(tmp_path, demo_modbus.port, None)
    code = main(["read", str(site), "--sensor", "p101_flow", "--sensor", "m201_running", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [r["sensor"] for r in rows] == ["p101_flow", "m201_running"]
    flow, running = rows
    assert flow["quality"] == "good" and flow["unit"] == "m3/h"
    assert 100 < flow["value"] < 140 and len(flow["raw"]) == 2
    assert running["value"] is True and running["raw"] == [1]


def test_read_exits_1_when_a_sensor_is_bad(
    tmp_path: Path, demo_modbus: PlantThread, capsys: pytest.CaptureFixture[str]
) -> None:
    site = demo_copy(tmp_path, demo_modbus.port, None)
    demo_modbus.run_sync(lambda: demo_modbus.plant.add_illegal("input", 100, 2))
    try:
        code = main(["read", str(site), *sum((["--sensor", s] for s in MODBUS_SENSORS), [])])
    finally:
        demo_modbus.run_sync(demo_modbus.plant.clear_illegal)
    captured = capsys.readouterr()
    assert code == 1
    flow = next(line for line in captured.out.splitlines() if line.startswith("p101_flow"))
    assert "bad" in flow and "illegal data address" in flow
    others = [line for line in captured.out.splitlines()[1:] if not line.startswith("p101_flow")]
    assert len(others) == 5 and all(" good " in line for line in others)
    assert "1 of 6 sensors are not good" in captured.err


def test_read_with_nothing_listening_says_so_and_exits_1(tmp_path: Path) -> None:
    site = demo_copy(tmp_path, free_port(), None)
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent", "read", str(site), "--sensor", "p101_pressure"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"MAINTAINX_API_KEY": "x", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    assert "connection plc1: cannot connect to 127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    # Only the command's own summary reaches the terminal, not library log chatter.
    assert "Failed to connect" not in result.stderr


def test_read_unknown_sensor_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = demo_copy(tmp_path, free_port(), None)
    assert main(["read", str(site), "--sensor", "nope"]) == 2
    assert "no sensor nope" in capsys.readouterr().err


def test_a_bad_reading_shows_its_reason_and_the_raw_registers(
    tmp_path: Path, demo_modbus: PlantThread, capsys: pytest.CaptureFixture[str]
) -> None:
    site = demo_copy(tmp_path, demo_modbus.port, None)
    demo_modbus.run_sync(lambda: demo_modbus.plant.set_value("p101_flow", float("nan")))
    try:
        code = main(["read", str(site), "--sensor", "p101_flow", "--sensor", "p101_running"])
        table = capsys.readouterr().out
        assert main(["read", str(site), "--sensor", "p101_flow", "--json"]) == 1
        (row,) = json.loads(capsys.readouterr().out)
    finally:
        demo_modbus.run_sync(lambda: demo_modbus.plant.release("p101_flow"))
    assert code == 1
    flow = next(line for line in table.splitlines() if line.startswith("p101_flow"))
    # float32 NaN 0x7FC00000 with word_order little: the low word comes first.
    assert flow.split()[1:] == ["-", "m3/h", "bad", "not", "a", "number", "[0000", "7FC0]"]
    assert (row["quality"], row["reason"], row["raw"]) == ("bad", "not a number", [0, 0x7FC0])
    assert row["value"] is None


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: None, "no such file"),
        (lambda p: p.write_text("version: 1\nsite: {id: Plant_7}\n"), "site.id:"),
        (lambda p: p.write_bytes(b"\x00\x01binary"), "is a binary file"),
    ],
)
def test_read_on_an_unusable_site_file_exits_2_with_the_validators_line(
    tmp_path: Path, make: Any, fragment: str
) -> None:
    site = tmp_path / "site.yaml"
    make(site)
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent", "read", "site.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    first = result.stderr.splitlines()[0]
    assert first.startswith("site.yaml:") and ": error: " in first and fragment in first
    assert result.stdout == ""
