"""The documented ways to run the images cap their logs and give the shutdown its time."""

from __future__ import annotations

import re

from ruamel.yaml import YAML

from edge_agent.service.pipeline import SHUTDOWN_BUDGET_S
from tests.supply.lockfile import REPO_ROOT

# The hub's SIGTERM promise (Dockerfile.hub, docs/hub.md).
HUB_SHUTDOWN_S = 10


def docker_runs(text: str) -> list[str]:
    """Each ``docker run`` command of ``text``, continuation lines joined."""
    joined = re.sub(r"\\\n#?\s*", " ", text)
    return [line for line in joined.splitlines() if "docker run " in line]


def agent_runs(text: str) -> list[str]:
    """The ``docker run`` commands that run an agent image (not a one-off such as the
    backup's ``busybox tar``)."""
    return [command for command in docker_runs(text) if "edge-agent:" in command]


def test_the_agent_run_examples_cap_logs_and_outwait_the_shutdown() -> None:
    examples = agent_runs((REPO_ROOT / "Dockerfile.arm64").read_text())
    examples += agent_runs((REPO_ROOT / "docs" / "operations.md").read_text())
    assert len(examples) >= 2
    for command in examples:
        assert "--log-opt max-size=" in command and "--log-opt max-file=" in command, command
        stop = re.search(r"--stop-timeout (\d+)", command)
        assert stop and int(stop[1]) > SHUTDOWN_BUDGET_S + 5, command


def test_every_compose_service_caps_its_logs() -> None:
    compose = YAML(typ="safe").load((REPO_ROOT / "deploy" / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        options = service.get("logging", {}).get("options", {})
        assert {"max-size", "max-file"} <= options.keys(), name
        if name.startswith("hub"):
            assert int(service["stop_grace_period"].rstrip("s")) > HUB_SHUTDOWN_S, name
