"""Wall-clock steps under a running agent, and a restart across one: the rules run on the
agent's monotonic clock, so a step moves no deadline and drops no reading; a clock behind the
saved state is reported in /readyz and /metrics. The agent is a real process whose wall
clock libfaketime steps (``FAKETIME_DONT_FAKE_MONOTONIC=1``: the monotonic clock runs on)."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import (
    AgentProcess,
    BackgroundLoop,
    direct_site,
    holds,
    orders_for,
    steady_plant,
    wait_until,
    work_orders,
)

LIBFAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
pytestmark = pytest.mark.skipif(
    not LIBFAKETIME, reason="libfaketime is not installed (scripts/install-system-deps.sh)"
)

NO_DATA_RULE = {
    "id": "p101-no-data",
    "asset": "P-101",
    "sensor": "p101_vibration",
    "high": {"limit": 1000},
    "on_stale": "alarm",
}
EPISODE = {"rule": "p101-vibration-high", "state": "ACTIVE"}


def faked(clock_file: Path) -> dict[str, str]:
    return {
        "LD_PRELOAD": LIBFAKETIME[0],
        "FAKETIME_TIMESTAMP_FILE": str(clock_file),
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_CACHE_DURATION": "1",
    }


def good_readings(agent: AgentProcess) -> float:
    return agent.metric("edge_agent_readings_total", quality="good") or 0.0


def engine_counter(agent: AgentProcess, name: str) -> float:
    return agent.metric("edge_agent_rule_engine_total", counter=name) or 0.0


def agent_sees_step(agent: AgentProcess, seconds: float) -> None:
    """Wait (bounded) until the agent's wall clock has taken a step of about ``seconds``
    (libfaketime re-reads its file once a second): its /healthz uptime jumps with it."""

    def seen() -> bool:
        uptime = agent.json("/healthz")[1].get("uptime_s", 0.0)
        return abs(uptime - seconds) < 3600

    wait_until(seen, 15, f"the agent to see a {seconds} s step")


def after_more_readings(agent: AgentProcess, count: int) -> None:
    """Wait (bounded) until the rules have taken ``count`` more good readings: ticks ran."""
    target = good_readings(agent) + count
    wait_until(lambda: good_readings(agent) >= target, 30, f"{count} more readings")


def test_wall_clock_steps_and_a_restart_behind_the_saved_state(
    make_agent: Any,
    plant: Any,
    emulator: Any,
    background: BackgroundLoop,
    health_port: int,
    tmp_path: Path,
) -> None:
    document = direct_site(plant, emulator, health_port, tmp_path)
    document["rules"].append(NO_DATA_RULE)  # a false "no data" work order if stale fires
    agent: AgentProcess = make_agent(document)
    clock_file = tmp_path / "faketime"
    clock_file.write_text("+0\n")
    before = {wo["id"] for wo in work_orders(emulator)}
    with steady_plant(background, plant):
        agent.start(faked(clock_file))
        agent.wait_ready()
        events = agent.metric("edge_agent_alarm_events_total")

        # A step forward by a day: healthy sensors (stale after 10 s) stay fresh.
        clock_file.write_text("+1d\n")
        agent_sees_step(agent, 86400)
        after_more_readings(agent, 16)
        assert agent.metric("edge_agent_alarm_events_total") == events
        assert agent.metric("edge_agent_rule_state", rule="p101-no-data", state="NORMAL") == 1

        # A step back by two days: no reading is dropped, an over-limit episode is seen
        # and makes its work order.
        clock_file.write_text("-2d\n")
        agent_sees_step(agent, -2 * 86400)
        after_more_readings(agent, 8)
        background.run(lambda: plant.set_value("p101_vibration", 9.5))
        wait_until(lambda: orders_for(emulator, 1001, before), 20, "the P-101 work order")
        assert engine_counter(agent, "dropped_old_readings") == 0
        assert agent.metric("edge_agent_rule_state", rule="p101-no-data", state="NORMAL") == 1
        assert agent.metric("edge_agent_clock_implausible") == 0
        assert agent.stop() == 0

        # Restart eight days further back, behind the saved state: the episode continues
        # (no second work order, nothing stale), and the clock is reported implausible.
        clock_file.write_text("-10d\n")
        agent.start(faked(clock_file))
        agent.wait_serving()

        def clock_reason() -> list[str]:
            status, ready = agent.json("/readyz")
            assert status != 200
            return [r for r in ready["reasons"] if "system clock is implausible" in r]

        wait_until(clock_reason, 15, "the clock reason in /readyz")
        assert agent.metric("edge_agent_clock_implausible") == 1
        assert agent.metric("edge_agent_rule_state", **EPISODE) == 1
        after_more_readings(agent, 8)
        holds(lambda: len(orders_for(emulator, 1001, before)) == 1, 1.0, "one work order")
        assert agent.metric("edge_agent_rule_state", rule="p101-no-data", state="NORMAL") == 1

        # Time synchronisation sets the clock: the reason goes away on its own.
        clock_file.write_text("+0\n")
        wait_until(lambda: agent.metric("edge_agent_clock_implausible") == 0, 10, "clock ok")
        agent.wait_ready()
        assert agent.stop() == 0
