"""The hub's loop seen from the agent, end to end: Modbus plant → `edge-agent run` (MQTT) →
mosquitto → `edge-agent hub` → MaintainX emulator → signed webhook → hub → retained status
→ agent. While a rule's work order is open, a re-activation comments on it; once a
technician sets it DONE, the next activation makes a new work order."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from tests.conftest import Broker
from tests.service.conftest import (
    AgentProcess,
    BackgroundLoop,
    hub_document,
    hub_process,
    mqtt_forwarding,
    site_document,
    wait_until,
    work_orders,
)

RULE = "m201-current-high"


def _tracked(state_dir: Path) -> dict[str, Any]:
    """What the agent's work-order map holds for the rule (empty before the first)."""
    try:
        data = json.loads((state_dir / "work-orders.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    entry: dict[str, Any] = data.get(RULE, {})
    return entry


def test_reactivation_comments_while_open_and_creates_once_done(
    make_agent: Any,
    plant: Any,
    emulator: Any,
    mosquitto: Broker,
    background: BackgroundLoop,
    health_port: int,
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "state"
    document = site_document(
        modbus_port=plant.port,
        health_port=health_port,
        storage=state_dir,
        forwarding=mqtt_forwarding(mosquitto),
    )
    # Three activations in a minute would count as chattering and be held.
    document["rules"][1]["chattering"] = {"activations": 10, "window": "60s"}
    # No repair verification (issue 13): with it, an activation within verify_for of the
    # DONE reopens that work order instead (tests/hub/test_lifecycle_end_to_end.py).
    document["rules"][1]["verify_for"] = "0s"
    agent: AgentProcess = make_agent(document)
    before = {wo["id"] for wo in work_orders(emulator)}

    def orders() -> list[dict[str, Any]]:
        return [
            wo for wo in work_orders(emulator) if wo["id"] not in before and wo["assetId"] == 1002
        ]

    def current(value: float, state: str) -> None:
        background.run(lambda: plant.set_value("m201_current", value))
        wait_until(
            lambda: agent.metric("edge_agent_rule_state", rule=RULE, state=state) == 1.0,
            10,
            f"{RULE} {state}",
        )

    background.run(lambda: plant.set_value("m201_current", 35.0))
    hub_config = hub_document(tmp_path, mosquitto, emulator, webhooks=True)
    with hub_process(tmp_path, hub_config) as hub:
        agent.start()
        try:
            agent.wait_ready()
            # First activation: a new work order, which the agent learns from the hub.
            current(70.0, "ACTIVE")
            first = wait_until(orders, 20, "the first work order")[0]
            wait_until(lambda: _tracked(state_dir).get("work_order_id") == first["id"], 10, "map")
            assert _tracked(state_dir)["status"] == "OPEN"

            # Cleared and re-activated while it is open: a comment on it, no new one.
            current(35.0, "NORMAL")
            current(70.0, "ACTIVE")
            wait_until(
                lambda: any("Re-activated" in c["content"] for c in emulator.comments(first["id"])),
                20,
                "a comment on the open work order",
            )
            # Issue 21 §2: to the second, rounded (not 2026-...T14:54:21.432641674Z).
            reactivated = next(
                c["content"]
                for c in emulator.comments(first["id"])
                if "Re-activated" in c["content"]
            )
            assert re.match(r"Re-activated at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: ", reactivated)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                assert [wo["id"] for wo in orders()] == [first["id"]]
                time.sleep(0.1)

            # A technician closes it: the signed webhook reaches the hub, the status the agent.
            emulator.change_status(first["id"], "DONE")
            wait_until(lambda: _tracked(state_dir).get("status") == "DONE", 20, "DONE")

            # The next activation makes a new work order.
            current(35.0, "NORMAL")
            current(70.0, "ACTIVE")
            both = wait_until(lambda: len(orders()) == 2 and orders(), 20, "a second work order")
            second = next(wo for wo in both if wo["id"] != first["id"])
            assert second["title"] == "Conveyor motor M-201: current 70.0 A"
            assert second["externalData"]["alert_id"] != first["externalData"]["alert_id"]
            wait_until(lambda: _tracked(state_dir).get("work_order_id") == second["id"], 10)
            assert hub.poll() is None
            assert agent.stop() == 0
        finally:
            background.run(lambda: plant.set_value("m201_current", 35.0))
