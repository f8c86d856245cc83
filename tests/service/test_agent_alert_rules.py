"""deploy/prometheus/agent-alerts.yaml: well-formed, and every metric a rule uses is one the
agent really exports (a renamed metric would leave a rule that never fires)."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import generate_latest
from ruamel.yaml import YAML

from edge_agent.config.models import SiteConfig
from edge_agent.service.metrics import build_registry
from edge_agent.service.reload import ReloadReport
from tests.conftest import REPO_ROOT
from tests.service.rule_agent import HEALTHY_RULE, fault_site_document, running_agent

RULES_FILE = REPO_ROOT / "deploy" / "prometheus" / "agent-alerts.yaml"


async def test_every_metric_the_agent_rules_use_is_exported(tmp_path: Path) -> None:
    document = YAML(typ="safe").load(RULES_FILE.read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert len({rule["alert"] for rule in rules}) == len(rules) >= 8
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule
        assert rule["annotations"]["summary"], rule
    used = {name for rule in rules for name in re.findall(r"edge_agent_\w+", rule["expr"])}
    assert "edge_agent_outbox_dead_letters" in used

    state = tmp_path / "state"
    config = SiteConfig.model_validate(fault_site_document(state, [HEALTHY_RULE]))
    async with running_agent(config, state) as agent:
        text = generate_latest(build_registry(agent, ReloadReport())).decode()
    exported = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    exported |= {name + "_total" for name in exported}  # counters are scraped as _total
    assert used <= exported, sorted(used - exported)
