"""SIGTERM and SIGKILL mid-episode and mid-backlog: after a restart no duplicate work order
and nothing lost. The agent is a real process; MaintainX is the emulator over HTTP, its
"network" cut with the emulator's connection-drop fault."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

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


def test_restarts_lose_nothing_and_repeat_nothing(
    make_agent: Any,
    plant: Any,
    emulator: Any,
    background: BackgroundLoop,
    health_port: int,
    tmp_path: Path,
) -> None:
    agent: AgentProcess = make_agent(direct_site(plant, emulator, health_port, tmp_path))
    before = {wo["id"] for wo in work_orders(emulator)}
    episode = {"rule": "p101-vibration-high", "state": "ACTIVE"}
    with steady_plant(background, plant):
        agent.start()
        try:
            agent.wait_ready()
            # Mid-episode: the work order exists, the episode is open.
            background.run(lambda: plant.set_value("p101_vibration", 9.5))
            wait_until(lambda: orders_for(emulator, 1001, before), 20, "the P-101 work order")
            wait_until(
                lambda: agent.metric("edge_agent_rule_state", **episode) == 1.0, 10, "ACTIVE"
            )

            # SIGKILL mid-episode, restart: the episode is restored, no second work order.
            agent.kill()
            agent.start()
            agent.wait_ready()
            assert agent.metric("edge_agent_rule_state", **episode) == 1.0
            holds(lambda: len(orders_for(emulator, 1001, before)) == 1, 2.0)

            # Mid-backlog: MaintainX unreachable, an alert waits in the outbox.
            emulator.faults.drop_rate = 1.0
            background.run(lambda: plant.set_value("m201_current", 70.0))
            wait_until(lambda: (agent.metric("edge_agent_outbox_depth") or 0) >= 1, 20, "backlog")
            _, ready = agent.json("/readyz")
            assert ready["outbox"]["depth"] >= 1

            # SIGTERM mid-backlog: a clean exit within 10 s, the alert kept.
            assert agent.stop(timeout=10) == 0
            agent.start()
            agent.wait_serving()
            wait_until(lambda: (agent.metric("edge_agent_outbox_depth") or 0) >= 1, 10, "kept")

            # While MaintainX stays unreachable the agent says so: unready, with the reason.
            def unready() -> dict[str, Any] | None:
                status, body = agent.json("/readyz")
                return body if status == 503 else None

            body = wait_until(unready, 20, "/readyz to say the forwarder is down")
            assert any("forwarder is not connected" in r for r in body["reasons"])

            # SIGKILL mid-backlog (with delivery being retried), then the network comes back.
            agent.signal(signal.SIGKILL)
            assert agent.process is not None
            agent.process.wait(10)
            agent.process = None
            assert orders_for(emulator, 1002, before) == []
            emulator.faults.drop_rate = 0.0
            agent.start()
            agent.wait_ready()
            m201 = wait_until(lambda: orders_for(emulator, 1002, before), 20, "the buffered order")
            assert m201[0]["title"] == "Conveyor motor M-201: current 70.0 A"
            assert m201[0]["priority"] == "HIGH"
            wait_until(lambda: agent.metric("edge_agent_outbox_depth") == 0, 10, "an empty outbox")
            holds(
                lambda: (
                    len(orders_for(emulator, 1002, before)) == 1
                    and len(orders_for(emulator, 1001, before)) == 1
                ),
                2.0,
            )
            assert agent.stop() == 0
        finally:
            emulator.faults.drop_rate = 0.0
