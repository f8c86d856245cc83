"""The unit file passes `systemd-analyze verify` and says what the service contract needs."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

UNIT = REPO_ROOT / "systemd" / "edge-agent.service"


def _unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_declares_the_service_contract() -> None:
    settings = _unit_settings()
    expected = {
        "Type": "notify",
        "Restart": "always",
        "StateDirectory": "edge-agent",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "SupplementaryGroups": "dialout",
        "User": "edge-agent",
    }
    for key, value in expected.items():
        assert settings.get(key) == [value], key
    assert settings["WatchdogSec"], "WatchdogSec is set"
    assert any("EnvironmentFile" == key for key in settings)
    assert "run" in settings["ExecStart"][0].split()


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    analyzer = shutil.which("systemd-analyze")
    if analyzer is None:
        pytest.skip("systemd-analyze is not installed (make test installs Debian's systemd)")
    # verify checks that ExecStart's binary exists; point it at this test's Python, which
    # does, and keep every other line as shipped.
    text = UNIT.read_text()
    shipped_exec = _unit_settings()["ExecStart"][0].split()[0]
    copy = tmp_path / "edge-agent.service"
    copy.write_text(text.replace(shipped_exec, sys.executable))
    done = subprocess.run(
        [analyzer, "verify", str(copy)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        # Running without systemd as PID 1 (containers, CI) adds this notice; not the unit's.
        if line.strip() and "Failed to connect to bus" not in line
    ]
    assert done.returncode == 0, done.stdout + done.stderr
    assert problems == []
    # The copy parsed as an INI file too: no duplicate sections, nothing malformed.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(text)
    assert {"Unit", "Service", "Install"} <= set(parser.sections())


def test_the_unit_allows_the_serial_ports_of_common_gateways() -> None:
    allowed = {value.split()[0] for value in _unit_settings()["DeviceAllow"]}
    # PC UARTs, USB adapters, Raspberry Pi, SC16IS7xx RS-485 HATs, i.MX gateways.
    for driver in ("ttyS", "ttyUSB", "ttyACM", "ttyAMA", "ttySC", "ttymxc"):
        assert f"char-{driver}" in allowed, driver


def test_the_unit_does_not_restart_on_a_later_release_state() -> None:
    from edge_agent.commands.run import EXIT_NEWER_STATE

    [statuses] = _unit_settings()["RestartPreventExitStatus"]
    assert str(EXIT_NEWER_STATE) in statuses.split()
