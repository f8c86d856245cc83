"""The agent's metrics tell the truth (issue 17 §5, issue 21 §1), on a real agent process:

- ``edge-agent outbox SITE retry`` while the agent runs: ``edge_agent_outbox_depth`` and
  the ``/readyz`` depth follow the store, never negative (on main: -1 for good);
- a reload that rebuilds the forwarder and a source: their counters never go down (on
  main: ``forwarder_sent_total`` and ``source_reads_total`` fell back to 0).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.service.conftest import (
    AgentProcess,
    BackgroundLoop,
    direct_site,
    orders_for,
    steady_plant,
    wait_until,
    work_orders,
    write_site,
)

UNKNOWN_ASSET = 987_654
"""A MaintainX asset id the emulator does not know: its alert becomes a dead letter."""


def _outbox_cli(agent: AgentProcess, action: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            *agent.launcher,
            "outbox",
            str(agent.site),
            action,
            "--json",
            "--state-dir",
            str(agent.state_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=agent.env,
        cwd=agent.site.parent,
    )
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def _outbox_metrics(agent: AgentProcess) -> tuple[float, float]:
    metrics = agent.metrics()
    depth = metrics[("edge_agent_outbox_depth", ())]
    dead = metrics[("edge_agent_outbox_dead_letters", ())]
    assert depth >= 0 and dead >= 0, (depth, dead)
    return depth, dead


def test_outbox_retry_from_the_command_line_while_the_agent_runs_is_counted_once(
    make_agent: Any,
    plant: Any,
    emulator: Any,
    background: BackgroundLoop,
    health_port: int,
    tmp_path: Path,
) -> None:
    document = direct_site(plant, emulator, health_port, tmp_path)
    document["assets"]["M-201"]["maintainx_id"] = UNKNOWN_ASSET
    agent: AgentProcess = make_agent(document)
    before = {wo["id"] for wo in work_orders(emulator)}
    with steady_plant(background, plant):
        agent.start()
        agent.wait_ready()
        background.run(lambda: plant.set_value("m201_current", 70.0))
        wait_until(lambda: _outbox_metrics(agent) == (0, 1), 30, "one dead letter")
        # A dead letter needs a person: named in /readyz (the agent still works, so it
        # stays ready) and /healthz says degraded.
        status, ready = agent.json("/readyz")
        assert status == 200 and ready["dead_letters"]["count"] == 1, ready
        oldest = ready["dead_letters"]["oldest"]
        assert oldest["rule"] and oldest["alert_id"] and "400" in oldest["reason"], oldest
        assert ready["degraded"] == [ready["dead_letters"]["says"]]
        assert "1 dead letter(s) need a person; oldest: " in ready["degraded"][0]
        _, alive = agent.json("/healthz")
        assert (alive["status"], alive["dead_letters"]) == ("degraded", 1)

        # The operator fixes the site file (the agent reloads it) and retries from the CLI.
        document["assets"]["M-201"]["maintainx_id"] = 1002
        write_site(agent.site, document)
        wait_until(
            lambda: agent.metric("edge_agent_config_reloads_total", outcome="applied") == 1,
            15,
            "the fixed site file applied",
        )
        assert _outbox_cli(agent, "retry")["retried"] == 1
        wait_until(lambda: orders_for(emulator, 1002, before), 30, "the M-201 work order")

        # The store, /metrics and /readyz agree, and nothing ever went below zero.
        def settled() -> bool:
            status = _outbox_cli(agent, "status")
            _, ready = agent.json("/readyz")
            counts = (status["depth"], status["dead"])
            return (
                counts == (0, 0)
                and _outbox_metrics(agent) == counts
                and (ready["outbox"]["depth"], ready["outbox"]["dead"]) == counts
            )

        wait_until(settled, 20, "the metrics to agree with the store")
        _, ready = agent.json("/readyz")
        assert (ready["dead_letters"], ready["degraded"]) == (None, [])
        assert agent.json("/healthz")[1]["status"] == "ok"
        for _ in range(10):  # and they stay there (main drifted to -1 only after the ack)
            assert _outbox_metrics(agent) == (0, 0)
        assert agent.stop() == 0


def _counters(agent: AgentProcess) -> tuple[float, float, float]:
    metrics = agent.metrics()
    plc1 = (("connection", "plc1"),)
    return (
        metrics.get(("edge_agent_forwarder_sent_total", ()), 0.0),
        metrics.get(("edge_agent_source_reads_total", plc1), 0.0),
        metrics.get(("edge_agent_source_requests_total", plc1), 0.0),
    )


def test_counters_never_go_down_when_a_reload_rebuilds_the_forwarder_and_a_source(
    make_agent: Any,
    plant: Any,
    emulator: Any,
    background: BackgroundLoop,
    health_port: int,
    tmp_path: Path,
) -> None:
    document = direct_site(plant, emulator, health_port, tmp_path)
    agent: AgentProcess = make_agent(document)
    before = {wo["id"] for wo in work_orders(emulator)}
    with steady_plant(background, plant):
        agent.start()
        agent.wait_ready()
        background.run(lambda: plant.set_value("m201_current", 70.0))
        wait_until(lambda: orders_for(emulator, 1002, before), 30, "the M-201 work order")
        wait_until(lambda: _counters(agent)[0] == 1, 10, "one alert sent")
        seen = [_counters(agent)]
        delivered = agent.metric("edge_agent_forwarder_last_delivery_timestamp_seconds") or 0.0

        # A changed forwarder setting and a changed connection: both are rebuilt.
        document["forwarding"]["maintainx"]["timeout"] = "3s"
        document["connections"]["plc1"]["timeout"] = "600ms"
        write_site(agent.site, document)

        def reloaded() -> bool:
            seen.append(_counters(agent))
            return agent.metric("edge_agent_config_reloads_total", outcome="applied") == 1

        wait_until(reloaded, 15, "the reload to apply")
        reload_lines = [
            json.loads(line)
            for line in agent.logs().splitlines()
            if '"Configuration reloaded."' in line
        ]
        assert {"forwarder", "connection changed: plc1"} <= set(reload_lines[-1]["changes"])
        # The new source polls, the new forwarder sends: on top of the old counts.
        background.run(lambda: plant.set_value("p101_vibration", 9.5))
        wait_until(lambda: orders_for(emulator, 1001, before), 30, "the P-101 work order")
        wait_until(
            lambda: (
                (agent.metric("edge_agent_forwarder_last_delivery_timestamp_seconds") or 0.0)
                > delivered
            ),
            10,
            "the new forwarder's delivery",
        )
        seen.append(_counters(agent))
        for name, series in zip(("sent", "reads", "requests"), zip(*seen, strict=True)):
            assert list(series) == sorted(series), f"{name} went down: {series}"
        assert seen[-1][0] == 2  # one alert by each forwarder
        assert agent.stop() == 0


def test_retired_counters_add_what_replaced_stages_counted() -> None:
    from edge_agent.interfaces import ConnectionStats, ForwarderStatus, HubConfirmation
    from edge_agent.service.retired_counters import RetiredCounters

    retired = RetiredCounters()
    retired.retire_forwarder(ForwarderStatus(sent=3, failed=2, hub=HubConfirmation(resends=4)))
    # A negative count is a bug: ignored.
    retired.retire_forwarder(ForwarderStatus(sent=1, hub=HubConfirmation(resends=-7)))
    retired.retire_source("plc1", ConnectionStats(reads=10, requests=20))
    assert retired.forwarder("sent", 5) == 9
    assert retired.forwarder("failed", None) == 2
    assert retired.forwarder("resends", 1) == 5
    assert retired.has_forwarder("resends") and retired.has_forwarder("results")
    # A forwarder without the hub's confirmation leaves no hub series behind.
    direct = RetiredCounters()
    direct.retire_forwarder(ForwarderStatus(sent=1))
    assert direct.has_forwarder("sent") and not direct.has_forwarder("resends")
    assert retired.source("plc1", "reads", 1) == 11
    assert retired.source("ua1", "reads", 1) == 1
