"""docs/operations.md's metrics table documents every metric the agent exports, and names
none it does not (issue 21 §3: metrics say what they name, in one table)."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import generate_latest

from edge_agent.config.models import SiteConfig
from edge_agent.service.metrics import build_registry
from edge_agent.service.reload import ReloadReport
from tests.conftest import REPO_ROOT, free_port
from tests.service.rule_agent import HEALTHY_RULE, fault_site_document, running_agent

DOC = REPO_ROOT / "docs" / "operations.md"
SERVICE = REPO_ROOT / "edge_agent" / "service"
# The health server (shared with the hub) counts its own connections.
HEALTH_SERVER = REPO_ROOT / "edge_agent" / "common" / "health.py"


def _bare(name: str) -> str:
    name = name.removeprefix("edge_agent_")
    return name.removesuffix("_total")


def documented() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("Metrics (all prefixed `edge_agent_`):")
    table = text[text.index("| metric |", start) :]
    rows = table[: table.index("\n\n")].splitlines()[2:]
    names: set[str] = set()
    for row in rows:
        first_cell = row.split("|")[1]
        names |= {_bare(n) for n in re.findall(r"`([a-z_]+)`", first_cell)}
    return names


def defined_in_source() -> set[str]:
    """Every metric family the agent's service package and its health server define (the
    hub has its own)."""
    names: set[str] = set()
    for path in [*SERVICE.glob("*.py"), HEALTH_SERVER]:
        names |= {_bare(n) for n in re.findall(r'"(edge_agent_[a-z_]+)"', path.read_text())}
    return names


def test_every_defined_metric_is_documented_and_no_row_is_stale() -> None:
    docs, source = documented(), defined_in_source()
    assert len(source) >= 40
    assert not source - docs, f"undocumented metrics: {sorted(source - docs)}"
    assert not docs - source, f"documented but never exported: {sorted(docs - source)}"


async def test_every_metric_a_running_agent_exports_is_documented(tmp_path: Path) -> None:
    state = tmp_path / "state"
    document = fault_site_document(state, [HEALTHY_RULE])
    document["forwarding"] = {
        "mode": "maintainx",
        "maintainx": {
            "base_url": f"http://127.0.0.1:{free_port()}/v1",
            "api_key": "file:mx.key",
        },
    }
    (tmp_path / "mx.key").write_text("key\n")
    config = SiteConfig.model_validate(document)
    async with running_agent(config, state) as agent:
        registry = build_registry(agent, ReloadReport())
        text = generate_latest(registry).decode()
    exported = {_bare(line.split()[2]) for line in text.splitlines() if line.startswith("# TYPE")}
    assert {"source_read_errors", "rule_engine", "forwarder_sent"} <= exported
    assert not exported - documented(), sorted(exported - documented())
