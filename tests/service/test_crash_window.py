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
import time
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import (
    AgentProcess,
    BackgroundLoop,
    maintainx_forwarding,
    site_document,
    wait_until,
    work_orders,
)

CRASH_LAUNCHER = [sys.executable, str(Path(__file__).with_name("crash_agent.py"))]


def _orders(emulator: Any, asset_id: int, before: set[int]) -> list[dict[str, Any]]:
    return [
        wo
        for wo in work_orders(emulator)
        if wo.get("assetId") == asset_id and wo["id"] not in before
    ]


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


def _hold_one(emulator: Any, asset_id: int, before: set[int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert len(_orders(emulator, asset_id, before)) == 1
        time.sleep(0.1)


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
    document = site_document(
        modbus_port=plant.port,
        health_port=health_port,
        storage=state_dir,
        forwarding=maintainx_forwarding(emulator),
    )
    agent: AgentProcess = make_agent(document)
    marker = tmp_path / "crashed"
    normal = {"p101_vibration": 2.5, "m201_current": 35.0}
    for name, value in normal.items():
        background.run(lambda n=name, v=value: plant.set_value(n, v))
    before = {wo["id"] for wo in work_orders(emulator)}
    try:
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
            assert _orders(emulator, asset_id, before) == []

        agent.start()
        agent.wait_ready()
        orders = wait_until(lambda: _orders(emulator, asset_id, before), 20, "the work order")
        assert orders[0]["externalData"]["alert_id"] == alert_id
        assert agent.metric("edge_agent_rule_state", rule=rule, state="ACTIVE") == 1.0
        wait_until(lambda: agent.metric("edge_agent_outbox_depth") == 0, 10, "an empty outbox")
        _hold_one(emulator, asset_id, before, 2.0)
        assert agent.metric("edge_agent_alerts_recovered_total") == 1.0
        assert agent.stop() == 0
        # Queued and delivered: the clean stop's save no longer carries them.
        assert _pending(state_dir) == []
        assert "Queuing alerts saved with the rule state" in agent.logs()
    finally:
        for name, value in normal.items():
            background.run(lambda n=name, v=value: plant.set_value(n, v))
