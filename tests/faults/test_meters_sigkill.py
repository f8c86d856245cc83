"""Run hours exact across restarts and SIGKILL (issue 14): `edge-agent run` as a real
process on the Modbus plant, forwarding straight to the MaintainX emulator, killed with
SIGKILL three times while the pump runs. With ``max_gap: 1s`` each restart is a gap (not
run time) and a save lost at a kill would send a value below one sent before it.

With ``max_gap: 1h``, the oracle: the pump runs the whole time and ``max_gap`` is longer
than any restart, so every interval between two polls counts (the agent's own downtime
too: the pump ran).
The run hours at any reading are then exactly the time since the first reading, so every
value MaintainX received, dated, points back to the same first reading; a poll counted
twice or lost at a kill would move that point by a poll (250 ms). MaintainX keeps
milliseconds, hence the 2 ms tolerance."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.demo.plant import seed_demo_assets
from edge_agent.simulators.maintainx import Emulator
from edge_agent.simulators.maintainx_emulator.store import parse_iso
from tests.service.conftest import (
    API_KEY,
    AgentProcess,
    BackgroundLoop,
    direct_site,
    health_port,
    make_agent,
    wait_until,
)

__all__ = ["health_port", "make_agent"]  # fixtures used here

NS_PER_HOUR = 3_600_000_000_000
KILLS = 3


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(keys={API_KEY: 1}, rate_limiting=False) as mx:
        seed_demo_assets(mx)
        yield mx


def _state(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir / "meters.json").read_text())
    except (OSError, ValueError):
        return None
    return data["meters"]["p101-run-hours"]


def _running_ns(state_dir: Path) -> int:
    state = _state(state_dir)
    return state["running_ns"] if state else -1


@pytest.mark.slow
@pytest.mark.parametrize("max_gap", ["1h", "1s"])
def test_run_hours_exact_across_restarts_and_sigkill(
    max_gap: str,
    make_agent: Any,
    plant: Any,
    background: BackgroundLoop,
    emulator: Emulator,
    health_port: int,
    tmp_path: Path,
) -> None:
    document = direct_site(plant, emulator, health_port, tmp_path)
    document["meters"] = {
        "p101-run-hours": {
            "asset": "P-101",
            "kind": "run_hours",
            "sensor": "p101_running",
            "every": "1s",
            "max_gap": max_gap,
            "pm": {"every": "500h", "title": "P-101 500 h service"},
        }
    }
    state_dir = tmp_path / "state"
    agent: AgentProcess = make_agent(document)
    background.run(lambda: plant.set_value("p101_running", True))
    pauses = iter([0.05, 0.13, 0.21])
    for _ in range(KILLS):
        before = _running_ns(state_dir)
        agent.start()
        # A few polls counted and saved in this run, then SIGKILL mid-run.
        wait_until(lambda b=before: _running_ns(state_dir) > b + 1_500_000_000, 30, "run time")
        time.sleep(next(pauses))  # anywhere between two polls' saves
        agent.kill()
        time.sleep(1.2)  # down longer than the shorter max_gap: a gap there
    agent.start()
    agent.wait_ready()
    kills_done = _running_ns(state_dir)
    wait_until(lambda: _running_ns(state_dir) > kills_done + 2_000_000_000, 30, "run time")
    meters = {m["name"]: m["id"] for m in emulator.store.all_meters()}
    meter_id = meters.get("p101-run-hours")
    wait_until(
        lambda: (
            agent.metric("edge_agent_plant_outbox_depth") == 0.0
            and agent.metric("edge_agent_plant_readings_sent_total")
        ),
        30,
        "the plant-data outbox drained",
    )
    assert agent.stop() == 0
    state = _state(state_dir)
    assert state is not None
    first_ns = state["last_ns"] - state["running_ns"]

    assert list(meters) == ["p101-run-hours"]  # created once across four starts
    triggers = emulator.store.all_meter_triggers()
    assert [(t["meterId"], t["name"], t["amount"]) for t in triggers] == [
        (meter_id, "P-101 500 h service", 500.0)
    ]
    readings = [r for r in emulator.readings if r["meterId"] == meter_id]
    assert len(readings) >= KILLS + 1  # one a second at most; at least one a run
    dated = [(parse_iso(r["readingDate"]).timestamp(), r["value"]) for r in readings]
    values = [hours for _, hours in sorted(dated)]
    assert values == sorted(values)  # never backwards, a kill's lost save would show here
    assert state["running_ns"] > KILLS * 1_500_000_000
    if max_gap == "1h":  # every interval counts: each value points back to the first poll
        for seconds, hours in dated:
            points_back_to = round(seconds * 1e9) - hours * NS_PER_HOUR
            assert abs(points_back_to - first_ns) <= 2_000_000, (seconds, hours, first_ns)
    else:  # each restart is a gap longer than 1 s, not run time (a stalled poll may add one)
        assert state["gaps"] >= KILLS


@pytest.mark.slow
def test_downtime_changes_reach_maintainx_once_each_in_order(
    make_agent: Any,
    plant: Any,
    background: BackgroundLoop,
    emulator: Emulator,
    health_port: int,
    tmp_path: Path,
) -> None:
    """The pump stops and runs again, through a SIGKILL (it starts while the agent is down)
    and an API outage (half the requests answered 500): MaintainX hears ONLINE, OFFLINE
    UNPLANNED, ONLINE, each once, in order."""
    document = direct_site(plant, emulator, health_port, tmp_path)
    document["assets"]["P-101"]["downtime"] = {"running": "p101_running"}
    agent: AgentProcess = make_agent(document)

    def statuses() -> list[tuple[str, str | None]]:
        rows = emulator.store.all_asset_statuses().get(1001, [])
        return [(r["status"], r["downtimeType"]) for r in rows]

    online, offline = ("ONLINE", None), ("OFFLINE", "UNPLANNED")
    background.run(lambda: plant.set_value("p101_running", True))
    agent.start()
    wait_until(lambda: statuses() == [online], 30, "ONLINE")
    emulator.faults.error_rate = 0.5
    # And surely some: with only a few requests, the rate alone may inject none.
    emulator.faults.force_status(500, {"message": "injected"}, count=2)
    background.run(lambda: plant.set_value("p101_running", False))
    wait_until(lambda: statuses() == [online, offline], 30, "OFFLINE")
    agent.kill()
    background.run(lambda: plant.set_value("p101_running", True))  # while the agent is down
    agent.start()
    wait_until(lambda: statuses() == [online, offline, online], 30, "ONLINE again")
    emulator.faults.reset()
    time.sleep(1.0)  # a few more polls: nothing new to say
    assert agent.stop() == 0
    assert statuses() == [online, offline, online]
    assert emulator.faults.injected["forced_500"] == 2
