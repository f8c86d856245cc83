"""Modbus RTU with the package as a user installs it (issue: `pip install edge-agent` had
no pyserial, so every RTU sensor read "Serial client requires pyserial" while `validate`
said "no problems"). The device is pymodbus' RTU server on one end of a socat pty pair;
the agent reads the other end, as it would read /dev/ttyUSB0."""

from __future__ import annotations

import grp
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@dataclass
class SerialLine:
    """A pty pair: the agent opens ``agent``, the RTU device serves ``device``."""

    agent: Path
    device: Path


def _wait_until(condition: object, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout_s}s")
        time.sleep(0.02)


@pytest.fixture
def serial_line(tmp_path: Path) -> Iterator[SerialLine]:
    socat = shutil.which("socat")
    if socat is None:
        pytest.fail("socat is not installed: run scripts/install-system-deps.sh")
    line = SerialLine(tmp_path / "ttyAGENT", tmp_path / "ttyDEVICE")
    relay = subprocess.Popen(
        [socat, f"pty,raw,echo=0,link={line.agent}", f"pty,raw,echo=0,link={line.device}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_until(lambda: line.agent.exists() and line.device.exists(), "no pty pair")
        yield line
    finally:
        relay.terminate()
        relay.wait(timeout=10)


@pytest.fixture
def rtu_device(serial_line: SerialLine) -> Iterator[SerialLine]:
    """pymodbus' RTU server (unit 1, holding register N holds 4200 + N) on the line."""
    server = subprocess.Popen(
        [sys.executable, str(HERE / "rtu_device.py"), str(serial_line.device)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready = server.stdout.readline()  # bounded: the process prints it or exits
        if ready.strip() != "ready":
            server.kill()
            pytest.fail(f"the RTU device did not start: {server.communicate(timeout=10)}")
        yield serial_line
    finally:
        server.terminate()
        server.wait(timeout=10)


def site_file(tmp_path: Path, device: Path) -> Path:
    site = tmp_path / "site.yaml"
    site.write_text(
        "version: 1\n"
        "site: {id: rtu-as-installed}\n"
        "connections:\n"
        f"  bus: {{protocol: modbus-rtu, device: {device}, baudrate: 19200, timeout: 1s}}\n"
        "sensors:\n"
        "  tank_level: {connection: bus, register: {table: holding, address: 3}, unit: cm}\n"
        "  tank_temp: {connection: bus, register: {table: holding, address: 7}}\n"
    )
    return site


def test_an_rtu_device_reads_with_the_package_as_installed(
    installed_agent: Path,
    rtu_device: SerialLine,
    tmp_path: Path,
) -> None:
    site = site_file(tmp_path, rtu_device.agent)
    agent = str(installed_agent / "edge-agent")
    checked = subprocess.run(
        [agent, "validate", str(site)], capture_output=True, text=True, timeout=120
    )
    assert (checked.returncode, checked.stdout) == (0, ""), checked.stdout + checked.stderr
    done = subprocess.run(
        [agent, "read", str(site), "--json"], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    readings = {r["sensor"]: r for r in json.loads(done.stdout)}
    assert readings["tank_level"]["value"] == 4203
    assert readings["tank_temp"]["value"] == 4207
    assert {r["quality"] for r in readings.values()} == {"good"}
    assert "Traceback" not in done.stderr


def test_validate_names_a_serial_device_that_is_missing(
    installed_agent: Path,
    tmp_path: Path,
) -> None:
    site = site_file(tmp_path, tmp_path / "ttyUSB7")
    done = subprocess.run(
        [str(installed_agent / "edge-agent"), "validate", str(site)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0  # a warning: the file may be checked before the adapter is in
    assert (
        f"warning: connections.bus.device: serial device {tmp_path / 'ttyUSB7'} does not exist"
        in done.stdout
    )


def problem_as_nobody(device: Path) -> str:
    """``device_problem(device)`` computed in a forked child running as user nobody (the
    interpreter is already loaded there: no file of it needs to be readable by nobody)."""
    from edge_agent.config.serial_devices import device_problem

    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_end, (device_problem(str(device)) or "").encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        text = answer.read().decode()
    os.waitpid(child, 0)
    return text


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to check as another user")
def test_validate_says_how_to_get_access_to_a_serial_device(serial_line: SerialLine) -> None:
    """The pty is root's (mode 0620): user nobody may not open it, and the
    message says which group to join. (The pty's own name: the link is in a private
    folder.)"""
    pty = serial_line.agent.resolve()
    group = grp.getgrgid(pty.stat().st_gid).gr_name
    assert problem_as_nobody(pty) == (
        f"serial device {pty} is not readable and writable by user nobody: "
        f"add the user to its group ({group}, usually dialout): sudo usermod -aG {group} nobody, "
        "then log in again or restart the service"
    )
