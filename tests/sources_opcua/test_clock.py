"""Source timestamps never drive the rules: the agent against a real asyncua server whose
SourceTimestamps are wrong (9999-12-31) or stuck at the last change of a steady value."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from edge_agent.config.models import SiteConfig
from edge_agent.service.pipeline import Agent
from edge_agent.simulators.opcua import OpcUaSimulator

from .conftest import PLANT

pytestmark = pytest.mark.asyncio(loop_scope="module")

YEAR_9999 = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
POLLS = 25  # 2.5 s of 100 ms polls: well past the steady sensor's 1 s staleness


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[OpcUaSimulator]:
    simulator = OpcUaSimulator(nodes=0, update_interval_s=0.1)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()


def site(endpoint: str, storage: Path) -> SiteConfig:
    node = {sensor: f"ns=2;s={name}" for sensor, name in PLANT.items()}
    return SiteConfig.model_validate(
        {
            "version": 1,
            "site": {"id": "ua-plant"},
            "defaults": {"stale_after": "1s"},
            "connections": {
                "ua1": {
                    "protocol": "opcua",
                    "endpoint": endpoint,
                    "poll": "100ms",
                    "timeout": "2s",
                    "backoff": {"initial": "100ms", "max": "400ms"},
                }
            },
            "assets": {"p101": {"name": "Pump 101"}, "m201": {"name": "Motor 201"}},
            "sensors": {sensor: {"connection": "ua1", "node": nid} for sensor, nid in node.items()},
            "rules": [
                {
                    # Steady value: no alarm unless the sensor goes stale.
                    "id": "bearing-no-data",
                    "asset": "p101",
                    "sensor": "p101_bearing_temp",
                    "high": {"limit": 1000},
                    "on_stale": "alarm",
                },
                {
                    "id": "vibration-no-data",
                    "asset": "m201",
                    "sensor": "m201_vibration",
                    "high": {"limit": 1000},
                    "on_stale": "alarm",
                },
                {
                    "id": "winding-hot",
                    "asset": "m201",
                    "sensor": "m201_winding_temp",
                    "high": {"limit": 50},
                    "on_delay": "1h",
                },
            ],
            "storage": {"path": str(storage)},
        }
    )


async def polls(agent: Agent, count: int, timeout_s: float = 30.0) -> None:
    """Wait until the source has read ``count`` more times (bounded)."""
    stats = agent.sources["ua1"].stats
    target = stats.reads + count
    deadline = time.monotonic() + timeout_s
    while stats.reads < target:
        assert time.monotonic() < deadline, f"only {stats.reads} of {target} reads"
        await asyncio.sleep(0.05)


@pytest_asyncio.fixture(loop_scope="module")
async def agent(sim: OpcUaSimulator, tmp_path: Path) -> AsyncIterator[Agent]:
    for name in PLANT.values():
        await sim.clear_fault(name)
    running = Agent(site(sim.endpoint, tmp_path / "state"), tmp_path, tmp_path / "state")
    await running.start()
    try:
        yield running
    finally:
        await running.stop()
        for name in PLANT.values():
            await sim.clear_fault(name)


async def test_a_steady_value_with_a_stuck_source_timestamp_never_goes_stale(
    sim: OpcUaSimulator, agent: Agent
) -> None:
    """Poll mode, the value does not change and the server keeps its SourceTimestamp at the
    last change (allowed by OPC UA): every poll is a fresh reading, no false work order."""
    sim.make_stale(PLANT["p101_bearing_temp"])
    stuck = sim.source_time_ns_of(PLANT["p101_bearing_temp"])
    await polls(agent, 3)
    assert agent.latest["p101_bearing_temp"].source_time_ns == stuck
    await polls(agent, POLLS)
    assert agent.latest["p101_bearing_temp"].source_time_ns == stuck
    assert agent.engine.stale_sensors() == []
    assert agent.engine.rule_states()["bearing-no-data"] == "NORMAL"
    assert agent.engine.counters["dropped_old_readings"] == 0
    assert not [e for e in agent.recent_events if e.kind in ("stale", "activated")]


async def test_a_source_timestamp_in_year_9999_is_reported_and_moves_nothing(
    sim: OpcUaSimulator, agent: Agent, caplog: pytest.LogCaptureFixture
) -> None:
    """No deadline fires early (the 1 h on-delay stays pending, healthy sensors stay fresh),
    the state saves no year-9999 time, and the sensor is counted and logged once."""
    caplog.set_level(logging.WARNING, logger="edge_agent.service.agent_clock")
    await polls(agent, 3)
    await sim.set_value_at(PLANT["m201_winding_temp"], 60.0, YEAR_9999)
    await polls(agent, POLLS)
    engine: Any = agent.engine
    assert engine.rule_states() == {
        "bearing-no-data": "NORMAL",
        "vibration-no-data": "NORMAL",
        "winding-hot": "PENDING",
    }
    assert engine.stale_sensors() == []
    assert engine.now < time.monotonic_ns() + 1
    assert engine.snapshot()["now"] == engine.now
    assert agent.source_times.implausible["m201_winding_temp"] >= POLLS - 1
    assert set(agent.source_times.implausible) == {"m201_winding_temp"}
    logged = [r for r in caplog.records if r.getMessage().startswith("Source timestamp is far")]
    assert [r.__dict__["sensor"] for r in logged] == ["m201_winding_temp"]
