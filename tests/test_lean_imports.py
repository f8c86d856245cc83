"""What a running agent keeps resident (issue 16): ``edge-agent run`` loads its own command
module only, and httpx comes without its command-line tool (click, rich, pygments). Each
check runs in a fresh interpreter: the test process has imported everything already."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

NAMES = [
    "edge_agent.commands.hub",
    "edge_agent.commands.demo",
    "edge_agent.simulators",
    "rich",
    "click",
    "pygments",
    "httpx",
]


def modules_after(code: str, names: list[str] = NAMES) -> dict[str, bool]:
    probe = (
        "import json, sys\n"
        f"{code}\n"
        f"names = {names!r}\n"
        "print(json.dumps({n: n in sys.modules for n in names}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: dict[str, bool] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_run_loads_only_its_own_command() -> None:
    loaded = modules_after(
        "from edge_agent.cli import build_parser, _command_named\n"
        "build_parser(_command_named(['run', 'site.yaml'])).parse_args(['run', 'site.yaml'])"
    )
    assert not loaded["edge_agent.commands.hub"]
    assert not loaded["edge_agent.commands.demo"]
    assert not loaded["edge_agent.simulators"]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["run", "site.yaml"], "run"),
        (["--version"], None),
        (["no-such-command"], None),
        (["hub", "hub.yaml", "parked"], "hub"),
    ],
)
def test_the_command_is_the_first_word_that_is_no_option(
    argv: list[str], named: str | None
) -> None:
    from edge_agent.cli import _command_named

    assert _command_named(argv) == named


def test_every_command_is_still_listed_and_parsed() -> None:
    from edge_agent.cli import COMMANDS, build_parser

    parser = build_parser("validate")
    help_text = parser.format_help()
    assert all(name in help_text for name in COMMANDS)
    with pytest.raises(SystemExit):
        build_parser(None).parse_args(["no-such-command"])


def test_httpx_without_its_command_line_tool() -> None:
    loaded = modules_after("import edge_agent.maintainx.client")
    assert loaded["httpx"]
    assert not (loaded["rich"] or loaded["click"] or loaded["pygments"])
    # The tool stays importable for whoever wants it (where its dependencies are installed).
    if not all(importlib.util.find_spec(name) for name in ("click", "rich", "pygments")):
        return
    still = modules_after("import edge_agent.common.lean_httpx\nimport httpx._main")
    assert still["httpx"]


def test_a_modbus_agent_forwarding_to_maintainx_loads_no_other_protocol() -> None:
    """What ``run`` imports for a Modbus site with MaintainX forwarding: no OPC UA stack
    (asyncua ≈ 20 MiB), no MQTT client, no cryptography (≈ 14 MiB), no hub. Each is
    imported where a site that uses it builds its part."""
    others = [
        "asyncua",
        "paho",
        "cryptography",
        "edge_agent.hub",
        "edge_agent.sources.opcua.source",
        "edge_agent.forwarders.mqtt",
        "edge_agent.simulators",
    ]
    loaded = modules_after(
        "import edge_agent.commands.run, edge_agent.service.app, edge_agent.service.wiring\n"
        "import edge_agent.sources.modbus.source, edge_agent.forwarders.maintainx.forwarder\n"
        "import edge_agent.config.loader, edge_agent.config.checks\n"
        "import edge_agent.service.isolated_load, edge_agent.service.config_changes",
        others,
    )
    assert [name for name in others if loaded[name]] == []
