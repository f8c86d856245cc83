"""The plant-data outbox cannot open (its path taken by a file): the alarms run on, and the
meters' absence is said in ``/readyz`` and the log, not shown as a site without meters."""

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
)

__all__ = ["health_port", "make_agent"]  # fixtures used here


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(keys={API_KEY: 1}, rate_limiting=False) as mx:
        seed_demo_assets(mx)
        yield mx


def test_meters_that_cannot_start_are_said_in_readyz(
    make_agent: Any, plant: Any, emulator: Emulator, health_port: int, tmp_path: Path
) -> None:
    document = direct_site(plant, emulator, health_port, tmp_path)
    document["meters"] = {
        "p101-run-hours": {"asset": "P-101", "kind": "run_hours", "sensor": "p101_running"}
    }
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    (state_dir / "plant-outbox").write_text("not a folder")
    agent: AgentProcess = make_agent(document)
    agent.start()
    ready = agent.wait_ready()
    degraded = [line for line in ready["degraded"] if "meters and downtime not started" in line]
    assert len(degraded) == 1, ready["degraded"]
    assert ready["meters"] is None
    assert "Meters not started." in agent.logs()
    assert agent.stop() == 0
