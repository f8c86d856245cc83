"""`simulate modbus --list` and `simulate opcua --list` print the map the simulators serve
(issue 21 §4), the same one their control endpoint answers on ``GET /points``."""

from __future__ import annotations

import subprocess
import sys

from edge_agent.simulators import modbus, opcua


def _list(kind: str, *extra: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "simulate", kind, "--list", *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_modbus_list_names_every_point_with_address_type_and_driver() -> None:
    lines = _list("modbus")
    assert lines[0].split() == ["NAME", "ADDRESS", "TYPE", "UNIT", "DRIVEN", "BY"]
    assert len(lines) == 1 + len(modbus.DEMO_POINTS)
    vibration = next(line for line in lines if line.startswith("p101_vibration "))
    assert "unit 1 holding 0" in vibration and "int16 x0.01" in vibration
    assert "mm/s" in vibration and "profile 2.5 +-0.3" in vibration
    flow = next(line for line in lines if line.startswith("p101_flow "))
    assert "input 100" in flow and "little-endian" in flow


def test_opcua_list_names_the_nodes_and_the_bench_range() -> None:
    lines = _list("opcua", "--nodes", "3")
    assert len(lines) == 1 + len(opcua.PLANT) + 1
    bearing = next(line for line in lines if line.startswith("Line1.P101.BearingTemp "))
    assert "ns=2;s=Line1.P101.BearingTemp" in bearing and "degC" in bearing
    assert lines[-1].startswith("Bench.N00000 ... Bench.N00002")
