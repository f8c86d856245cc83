"""Hot reload of a running agent (a real process): a changed limit keeps the open episode,
an invalid edit keeps the old rules and reports the error exactly as `edge-agent validate`,
a removed rule's state is dropped."""

from __future__ import annotations

import json
import subprocess
import sys
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
    write_site,
)


def _reloads(agent: AgentProcess) -> dict[str, int]:
    status, body = agent.json("/healthz")
    return body["config"]["reloads"] if status == 200 else {}


def _save(site: Path, document: dict[str, Any]) -> None:
    # A new mtime and new content: the watcher hashes the content, so either is enough.
    write_site(site, document)


def test_reload_keeps_episodes_rejects_bad_edits_and_drops_removed_rules(
    make_agent: Any,
    plant: Any,
    emulator: Any,
    background: BackgroundLoop,
    health_port: int,
    tmp_path: Path,
) -> None:
    document = direct_site(plant, emulator, health_port, tmp_path)
    agent: AgentProcess = make_agent(document)
    site = agent.site
    before = {wo["id"] for wo in work_orders(emulator)}
    with steady_plant(background, plant):
        agent.start()
        agent.wait_ready()
        # Open an episode on P-101 vibration.
        background.run(lambda: plant.set_value("p101_vibration", 9.5))
        wait_until(lambda: orders_for(emulator, 1001, before), 20, "the P-101 work order")
        state = {"rule": "p101-vibration-high", "state": "ACTIVE"}

        # 1. Change the limit while the episode is open (still exceeded): same episode.
        document["rules"][0]["high"]["limit"] = 8.0
        _save(site, document)
        wait_until(lambda: _reloads(agent).get("applied") == 1, 15, "the reload to apply")
        assert agent.metric("edge_agent_rule_state", **state) == 1.0
        holds(lambda: len(orders_for(emulator, 1001, before)) == 1, 2.0, "one P-101 order")

        # 2. An invalid edit: the old rules keep running, the error is reported (health,
        #    metric, log) exactly as `edge-agent validate` prints it.
        bad = json.loads(json.dumps(document))
        bad["rules"][1]["high"]["limit"] = "very hot"
        _save(site, bad)
        wait_until(lambda: _reloads(agent).get("rejected") == 1, 15, "the reload to be rejected")
        validate = subprocess.run(
            [sys.executable, "-m", "edge_agent", "validate", str(site)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert validate.returncode != 0
        expected = [line for line in validate.stdout.splitlines() if ": error: " in line]
        assert expected and "rules[1].high.limit" in expected[0]
        _, health = agent.json("/healthz")
        assert health["config"]["errors"] == expected
        _, ready = agent.json("/readyz")
        assert ready["config"]["errors"] == expected
        assert agent.metric("edge_agent_config_reloads_total", outcome="rejected") == 1
        assert agent.metric("edge_agent_config_last_reload_success") == 0
        assert agent.metric("edge_agent_config_errors") == len(expected)
        logged = [json.loads(line)["message"] for line in agent.logs().splitlines() if line]
        assert all(line in logged for line in expected)
        # The old m201 rule (limit 60) still runs: 70 A makes a work order.
        background.run(lambda: plant.set_value("m201_current", 70.0))
        m201 = wait_until(lambda: orders_for(emulator, 1002, before), 20, "the M-201 order")
        assert m201[0]["priority"] == "HIGH"
        assert agent.metric("edge_agent_rule_state", **state) == 1.0

        # 3. Remove a rule: its state is dropped (gone from the engine and the state file).
        document["rules"] = [document["rules"][0]]
        _save(site, document)
        wait_until(lambda: _reloads(agent).get("applied") == 2, 15, "the second reload")
        assert agent.metric("edge_agent_config_last_reload_success") == 1
        assert (
            agent.metric("edge_agent_rule_state", rule="m201-current-high", state="ACTIVE") is None
        )
        assert agent.metric("edge_agent_rule_state", **state) == 1.0
        saved = json.loads((tmp_path / "state" / "rule-state.json").read_text())
        assert "p101-vibration-high" in saved["rules"]
        assert "m201-current-high" not in saved["rules"]
        # Only its episode count is kept: added back, it never reuses an alert id.
        assert saved["retired_episodes"] == {"m201-current-high": 1}
        assert len(orders_for(emulator, 1001, before)) == 1
        assert agent.stop() == 0
