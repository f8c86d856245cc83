"""A meter whose sensor goes bad (the PLC answers an exception for its register): every
reading refused past its ``max_gap`` is said in ``/readyz`` under ``degraded`` and in the
``edge_agent_meter_silent`` gauge, and both are gone once it reads again. A real agent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.demo.plant import seed_demo_assets
from edge_agent.simulators.maintainx import Emulator
from tests.service.conftest import (
    API_KEY,
    AgentProcess,
    direct_site,
    health_port,
    make_agent,
    wait_until,
)

__all__ = ["health_port", "make_agent"]  # fixtures used here

SILENT_LINE = "meter p101-run-hours: every reading refused"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(keys={API_KEY: 1}, rate_limiting=False) as mx:
        seed_demo_assets(mx)
        yield mx


def _silent_lines(agent: AgentProcess) -> list[str]:
    _, ready = agent.json("/readyz")
    return [line for line in ready.get("degraded", []) if SILENT_LINE in line]


def test_a_meter_refusing_every_reading_is_said_until_it_reads_again(
    make_agent: Any, plant: Any, emulator: Emulator, health_port: int, tmp_path: Path
) -> None:
    document = direct_site(plant, emulator, health_port, tmp_path)
    document["meters"] = {
        "p101-run-hours": {
            "asset": "P-101",
            "kind": "run_hours",
            "sensor": "p101_running",
            "max_gap": "2s",
        }
    }
    agent: AgentProcess = make_agent(document)
    agent.start()
    agent.wait_ready()
    wait_until(lambda: agent.metric("edge_agent_meter_silent", meter="p101-run-hours") == 0.0)
    assert _silent_lines(agent) == []

    plant.add_exception("coil", 16, 1, code=4)  # device failure: every read of it BAD
    [line] = wait_until(lambda: _silent_lines(agent), timeout=30.0, what="a silent meter")
    assert "stale or bad-quality sensor" in line
    assert agent.metric("edge_agent_meter_silent", meter="p101-run-hours") == 1.0
    _, ready = agent.json("/readyz")
    assert ready["meters"]["refused"]["p101-run-hours"]["bad_quality"] > 0

    plant.clear_illegal()
    wait_until(lambda: not _silent_lines(agent), timeout=30.0, what="the meter reading again")
    assert agent.metric("edge_agent_meter_silent", meter="p101-run-hours") == 0.0
    assert agent.stop() == 0
