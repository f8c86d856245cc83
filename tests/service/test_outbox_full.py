"""A full outbox: the agent says it is unready, holds the alert (nothing dropped), and
delivers everything once the forwarder drains the outbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_agent.service.app import OUTBOX_REFUSING
from tests.service.conftest import (
    AgentProcess,
    BackgroundLoop,
    direct_site,
    steady_plant,
    wait_until,
    work_orders,
)


def test_full_outbox_holds_alerts_and_turns_unready(
    make_agent: Any,
    plant: Any,
    emulator: Any,
    background: BackgroundLoop,
    health_port: int,
    tmp_path: Path,
) -> None:
    document = direct_site(plant, emulator, health_port, tmp_path)
    document["storage"]["max_bytes"] = "1000B"  # room for one alert (≈ 700 bytes)
    agent: AgentProcess = make_agent(document)
    before = {wo["id"] for wo in work_orders(emulator)}
    with steady_plant(background, plant):
        agent.start()
        try:
            agent.wait_ready()
            emulator.faults.drop_rate = 1.0  # MaintainX unreachable: the outbox fills
            background.run(lambda: plant.set_value("m201_current", 70.0))
            wait_until(lambda: agent.metric("edge_agent_outbox_depth") == 1, 20, "one alert queued")
            background.run(lambda: plant.set_value("p101_vibration", 9.5))
            wait_until(lambda: agent.metric("edge_agent_alerts_held") == 1, 20, "the second held")

            status, body = agent.json("/readyz")
            assert status == 503
            assert any(r.startswith("polling continues, 1 alerts held") for r in body["reasons"])
            assert OUTBOX_REFUSING in body["reasons"]  # the outbox's own flag says it too
            assert (agent.metric("edge_agent_outbox_refused_total") or 0) >= 1

            emulator.faults.drop_rate = 0.0
            wait_until(lambda: agent.json("/readyz")[0] == 200, 30, "ready again")

            def delivered() -> bool:
                new = [wo for wo in work_orders(emulator) if wo["id"] not in before]
                return sorted(wo.get("assetId") for wo in new) == [1001, 1002]

            wait_until(delivered, 30, "both work orders, once each")
            assert agent.metric("edge_agent_alerts_held") == 0
            assert agent.stop() == 0
        finally:
            emulator.faults.drop_rate = 0.0
