"""`edge-agent simulate set` drives a rule to a work order (issue 21 §4): the engineer
rehearses a rule against the simulator without writing a Modbus client. A real agent
process, the Modbus plant with its control endpoint, the MaintainX emulator over HTTP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from edge_agent.simulators.control import ControlServer
from edge_agent.simulators.modbus import control_setter, point_map
from tests.service.conftest import (
    AgentProcess,
    BackgroundLoop,
    direct_site,
    orders_for,
    steady_plant,
    wait_until,
    work_orders,
)


def _simulate_set(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "simulate", "set", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_simulate_set_and_a_profile_drive_a_rule_to_a_work_order(
    make_agent: Any,
    plant: Any,
    emulator: Any,
    background: BackgroundLoop,
    health_port: int,
    tmp_path: Path,
) -> None:
    control = ControlServer(point_map(), control_setter(plant), "127.0.0.1", 0)
    background.call(control.start())
    endpoint = f"127.0.0.1:{control.port}"
    agent: AgentProcess = make_agent(direct_site(plant, emulator, health_port, tmp_path))
    before = {wo["id"] for wo in work_orders(emulator)}
    try:
        with steady_plant(background, plant):
            agent.start()
            agent.wait_ready()
            done = _simulate_set(endpoint, "p101_vibration", "9.5")
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip() == "0s p101_vibration = 9.5"
            (order,) = wait_until(
                lambda: orders_for(emulator, 1001, before), 30, "the P-101 work order"
            )
            assert "vibration 9.50" in order["title"]

            # A profile: the M-201 current over its limit, then released to normal.
            profile = tmp_path / "rehearsal.txt"
            profile.write_text(
                "# M-201 overload\nat 0s m201_current 75\nat 3s m201_current 35  # normal\n"
            )
            done = _simulate_set(endpoint, "--profile", str(profile))
            assert done.returncode == 0, done.stderr
            assert done.stdout.splitlines() == ["0s m201_current = 75.0", "3s m201_current = 35.0"]
            wait_until(lambda: orders_for(emulator, 1002, before), 30, "the M-201 work order")

            refused = _simulate_set(endpoint, "p101_vibrations", "9")
            assert refused.returncode == 1
            assert "no point 'p101_vibrations'" in refused.stderr
    finally:
        background.call(control.close())
        assert agent.stop() == 0
