"""A bad edit never takes the plant down: a real `edge-agent run` on a broken site file runs
the last good configuration loudly, applies the fixed file at once, and without a saved copy
exits with the config-error status that the systemd unit does not restart."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT
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


def _broken(document: dict[str, Any]) -> dict[str, Any]:
    bad = json.loads(json.dumps(document))
    bad["rules"][0]["sensor"] = "no_such_sensor"
    return bad


def test_a_broken_site_file_runs_the_last_good_configuration(
    make_agent: Any,
    plant: Any,
    emulator: Any,
    background: BackgroundLoop,
    health_port: int,
    tmp_path: Path,
) -> None:
    document = direct_site(plant, emulator, health_port, tmp_path)
    agent: AgentProcess = make_agent(document)
    # A first good start saves the copy.
    agent.start()
    agent.wait_ready()
    assert agent.stop() == 0
    copy = agent.state_dir / "last-good-site.json"
    assert copy.stat().st_mode & 0o777 == 0o600
    assert "MAINTAINX_API_KEY}" in copy.read_text()  # the reference, never the value
    assert "mx-test-key" not in copy.read_text()

    # The engineer's edit breaks the file; the gateway reboots.
    write_site(agent.site, _broken(document))
    before = {wo["id"] for wo in work_orders(emulator)}
    with steady_plant(background, plant):
        agent.start()
        agent.wait_serving()
        status, body = agent.json("/readyz")
        assert status == 503
        assert any("last good configuration" in r for r in body["reasons"]), body
        assert body["config"]["fallback"] is not None
        assert agent.metric("edge_agent_config_fallback") == 1.0
        # The file on disk is invalid: its errors are shown and counted as a rejected
        # reload's are (docs/operations.md, "Hot reload"; found in review: none were).
        errors = body["config"]["errors"]
        assert errors and "no_such_sensor" in errors[0], body["config"]
        assert agent.metric("edge_agent_config_errors") == len(errors)
        assert agent.metric("edge_agent_config_last_reload_success") == 0.0
        assert agent.json("/healthz")[1]["config"]["errors"] == errors
        logs = agent.logs()
        assert "no_such_sensor" in logs  # the error, with file and line
        assert "running the last good configuration" in logs
        # The plant is still watched: an alarm still becomes a work order.
        background.run(lambda: plant.set_value("m201_current", 75.0))
        wait_until(lambda: orders_for(emulator, 1002, before), 20, "the M-201 work order")

        # Fixed: applied at once, the fallback ends.
        write_site(agent.site, document)
        wait_until(lambda: agent.metric("edge_agent_config_fallback") == 0.0, 20, "the fix")
        body = agent.wait_ready()
        assert body["config"]["fallback"] is None
        assert body["config"]["errors"] == []
        assert agent.metric("edge_agent_config_errors") == 0.0
        # `systemctl reload` re-reads file: secrets; it says which come from the environment.
        agent.signal(signal.SIGHUP)
        wait_until(lambda: "keep their start-up value" in agent.logs(), 20, "the reload log")
        assert "${MAINTAINX_API_KEY}" in agent.logs()
    assert agent.stop() == 0


def test_no_last_good_configuration_exits_with_the_config_error_status(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("version: 1\nsite: {id: Not-Valid}\n")
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "run", str(site), "--state-dir", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
    )
    assert done.returncode == 2, done.stderr
    assert "site.yaml:2" in done.stderr


def test_a_tampered_copy_is_refused_not_half_used(tmp_path: Path) -> None:
    state = tmp_path / "s"
    state.mkdir()
    (state / "last-good-site.json").write_text('{"version": 1, "site": {"id": "x"')
    site = tmp_path / "site.yaml"
    site.write_text("version: 1\nsite: {id: Not-Valid}\n")
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "run", str(site), "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
    )
    assert done.returncode == 2, done.stderr
    assert "last good configuration is unusable too" in done.stderr


def test_a_copy_that_is_no_file_is_refused_naming_it(tmp_path: Path) -> None:
    """Found in review: this refusal was logged before logging was set up, so the operator
    read "Last good configuration refused: ..." with neither the path nor the reason."""
    state = tmp_path / "s"
    (state / "last-good-site.json").mkdir(parents=True)
    site = tmp_path / "site.yaml"
    site.write_text("version: 1\nsite: {id: Not-Valid}\n")
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "run", str(site), "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
    )
    assert done.returncode == 2, done.stderr
    copy = str(state / "last-good-site.json")
    assert f"{copy}:1:1: error: (file): last good configuration refused: not a regular file" in (
        done.stderr
    )
    assert "last good configuration is unusable too" in done.stderr


def test_the_unit_does_not_restart_a_config_error() -> None:
    unit = (REPO_ROOT / "systemd" / "edge-agent.service").read_text()
    assert "RestartPreventExitStatus=2" in unit


def test_a_missing_site_file_runs_the_last_good_configuration_too(
    make_agent: Any,
    plant: Any,
    emulator: Any,
    health_port: int,
    tmp_path: Path,
) -> None:
    """Found in review: a missing site file (a failed mount) exited 2, which the unit does
    not restart, although a last good configuration was saved."""
    document = direct_site(plant, emulator, health_port, tmp_path)
    agent: AgentProcess = make_agent(document)
    agent.start()
    agent.wait_ready()
    assert agent.stop() == 0
    aside = agent.site.with_name("site.moved")
    agent.site.rename(aside)
    agent.start()
    agent.wait_serving()
    status, body = agent.json("/readyz")
    assert status == 503
    assert any("site.yaml is missing" in reason for reason in body["reasons"]), body
    assert "no such site file" in body["config"]["errors"][0], body["config"]
    assert agent.metric("edge_agent_config_errors") == 1.0
    aside.rename(agent.site)  # the mount is back
    wait_until(lambda: agent.metric("edge_agent_config_fallback") == 0.0, 20, "the file back")
    assert agent.stop() == 0


async def test_a_rule_state_of_the_wrong_shape_is_kept_aside_and_said(tmp_path: Path) -> None:
    """Found in review: valid JSON of the wrong shape was dropped without a trace in
    ``/readyz`` and without keeping the file."""
    from edge_agent.config.models import SiteConfig
    from edge_agent.service.app import Service
    from tests.service.rule_agent import HEALTHY_RULE, fault_site_document, write_document

    state = tmp_path / "state"
    state.mkdir()
    (state / "rule-state.json").write_text('{"version": 1, "site": "fault-plant", "now": "soon"}')
    document = fault_site_document(state, [HEALTHY_RULE])
    site_path = write_document(tmp_path / "site.yaml", document)
    service = Service(site_path, SiteConfig.model_validate(document), state)
    await service.start()
    try:
        ready, details = service.readiness()
        assert not ready
        assert any("rule state was damaged" in reason for reason in details["reasons"])
        assert (state / "rule-state.json.corrupt").read_text().endswith('"soon"}')
    finally:
        await service.stop()
