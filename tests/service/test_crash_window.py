"""SIGKILL in the window between "rule state saved" and "alert in the outbox", on both sides.

The rule state and the alert messages it produced are written in one atomic save, then put
in the outbox. Killed before the put, the restarted agent finds the messages in the state
file and queues them; killed after it, it queues them again (same event id, which delivery
drops). Either way: exactly one work order, carrying the alert id of the first activation —
not a second episode under a new alert id.
"""

from __future__ import annotations

import json
import signal
import sys
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

CRASH_LAUNCHER = [sys.executable, str(Path(__file__).with_name("crash_agent.py"))]


def _pending(state_dir: Path) -> list[dict[str, Any]]:
    data = json.loads((state_dir / "rule-state.json").read_text())
    pending: list[dict[str, Any]] = data.get("pending_messages", [])
    return pending


def _crash_at(agent: AgentProcess, point: str, marker: Path) -> None:
    """Start the agent under the crashing launcher; it dies at its first alert."""
    agent.launcher = CRASH_LAUNCHER
    agent.start({"CRASH_AT": point, "CRASH_MARKER": str(marker)})
    agent.launcher = [sys.executable, "-m", "edge_agent"]


def _died(agent: AgentProcess) -> int:
    assert agent.process is not None
    code = agent.process.wait(30)
    agent.process = None
    return code


@pytest.mark.parametrize(
    ("point", "sensor", "high", "asset_id", "rule"),
    [
        ("before-put", "p101_vibration", 9.5, 1001, "p101-vibration-high"),
        ("after-put", "m201_current", 70.0, 1002, "m201-current-high"),
    ],
)
def test_sigkill_between_state_save_and_outbox_makes_one_work_order(
    make_agent: Any,
    plant: Any,
    emulator: Any,
    background: BackgroundLoop,
    health_port: int,
    tmp_path: Path,
    point: str,
    sensor: str,
    high: float,
    asset_id: int,
    rule: str,
) -> None:
    state_dir = tmp_path / "state"
    agent: AgentProcess = make_agent(direct_site(plant, emulator, health_port, tmp_path))
    marker = tmp_path / "crashed"
    before = {wo["id"] for wo in work_orders(emulator)}
    with steady_plant(background, plant):
        _crash_at(agent, point, marker)
        agent.wait_ready()
        background.run(lambda: plant.set_value(sensor, high))
        assert _died(agent) == -signal.SIGKILL
        assert marker.read_text() == point

        # The state on disk says ACTIVE and holds the alert the crash interrupted.
        pending = _pending(state_dir)
        assert [(m["rule"], m["event"]) for m in pending] == [(rule, "activated")]
        alert_id = pending[0]["alert_id"]
        if point == "before-put":
            assert orders_for(emulator, asset_id, before) == []

        agent.start()
        agent.wait_ready()
        orders = wait_until(lambda: orders_for(emulator, asset_id, before), 20, "the work order")
        assert orders[0]["externalData"]["alert_id"] == alert_id
        assert agent.metric("edge_agent_rule_state", rule=rule, state="ACTIVE") == 1.0
        wait_until(lambda: agent.metric("edge_agent_outbox_depth") == 0, 10, "an empty outbox")
        holds(lambda: len(orders_for(emulator, asset_id, before)) == 1, 2.0, "one order")
        assert agent.metric("edge_agent_alerts_recovered_total") == 1.0
        assert agent.stop() == 0
        # Queued and delivered: the clean stop's save no longer carries them.
        assert _pending(state_dir) == []
        assert "Queuing alerts saved with the rule state" in agent.logs()
