"""The meters in a running agent (issue 14): a reload adds the first meter (the stage
starts), keeps a meter's totals, drops a removed one; health and metrics show them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from edge_agent.config.models import SiteConfig
from edge_agent.service.metrics import build_registry
from edge_agent.service.reload import ReloadReport
from tests.service.rule_agent import fault_site_document, feed, good, running_agent

S = 1_000_000_000
RUN_HOURS = {"asset": "P-101", "kind": "run_hours", "sensor": "healthy", "every": "1s"}
GAUGE = {"asset": "P-101", "kind": "gauge", "sensor": "odd", "every": "1s"}


def config(state_dir: Path, meters: dict[str, Any]) -> SiteConfig:
    document = fault_site_document(state_dir, [])
    document["meters"] = meters
    return SiteConfig.model_validate(document)


async def until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def running_ns(agent: Any) -> int:
    stage = agent.plant.stage
    return int(stage.meters["hours"].meter.state()["running_ns"])


async def test_a_reload_starts_keeps_and_drops_meters(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with running_agent(config(state, {}), state) as agent:
        assert agent.plant is None  # no meters: no plant-data outbox
        changes = await agent.apply_config(config(state, {"hours": RUN_HOURS}))
        assert "meters" in changes and agent.plant is not None
        await feed(agent, [good("healthy", 1)])
        await asyncio.sleep(0.05)
        await feed(agent, [good("healthy", 1)])
        await until(lambda: running_ns(agent) > 0)
        before = running_ns(agent)
        await agent.apply_config(config(state, {"hours": RUN_HOURS, "temp": GAUGE}))
        assert running_ns(agent) == before  # kept through the reload
        await feed(agent, [good("odd", 42)])
        await until(lambda: agent.plant.stage.counters.values_queued >= 2)
        await agent.apply_config(config(state, {"temp": GAUGE}))
        assert sorted(agent.plant.stage.meters) == ["temp"]
        health = agent.plant.health()
        assert health["meters"] == 1 and health["outbox"]["depth"] >= 2
        registry = build_registry(agent, ReloadReport())
        assert registry.get_sample_value("edge_agent_meter_values_queued_total") >= 2
        assert registry.get_sample_value("edge_agent_plant_outbox_depth") >= 2
        # No forwarding in this site: the plant data stays queued.
        assert agent.plant.forwarder is None
        outbox = agent.plant.outbox
        [item] = outbox.lease(1)
        outbox.dead_letter(item.id, "refused")
        [said] = agent.plant.degraded(agent.plant.health())
        assert said.startswith("plant data: 1 dead letter(s)") and "--plant" in said


async def test_a_high_rule_is_the_assets_downtime(tmp_path: Path) -> None:
    """``downtime: {rule: ...}`` in a running agent: the rule's activation and clear reach
    the plant-data outbox as OFFLINE and ONLINE."""
    from edge_agent.service.rules_loop import TICK_INTERVAL_S
    from tests.service.rule_agent import HEALTHY_RULE

    state = tmp_path / "state"
    document = fault_site_document(state, [HEALTHY_RULE])
    document["assets"]["P-101"]["downtime"] = {"rule": HEALTHY_RULE["id"]}
    async with running_agent(SiteConfig.model_validate(document), state) as agent:
        assert agent.plant is not None and agent.plant.outbox is not None
        outbox = agent.plant.outbox

        def statuses() -> list[str]:
            return [item.payload["status"] for item in outbox.peek(10)]

        await feed(agent, [good("healthy", 80)])
        await until(lambda: statuses() == ["OFFLINE"])
        await asyncio.sleep(TICK_INTERVAL_S)
        await feed(agent, [good("healthy", 10)])
        await until(lambda: statuses() == ["OFFLINE", "ONLINE"])
        [offline, _] = [item.payload for item in outbox.peek(10)]
        assert offline["downtime_type"] == "UNPLANNED"
