"""Alerts held by a full outbox are counted refused once each, however often they are
retried; the retries have their own counter (issue 17 §5). Found on main: 10 held alerts
gave ``edge_agent_outbox_refused_total 910``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config.models import SiteConfig
from edge_agent.service import handover
from edge_agent.service.metrics import build_registry
from edge_agent.service.pipeline import Agent
from edge_agent.service.refusals import RefusedAlerts
from edge_agent.service.reload import ReloadReport
from tests.service.rule_agent import (
    HEALTHY_RULE,
    fault_site_document,
    feed,
    good,
    running_agent,
)

RULES = 10


def _sample(agent: Agent, name: str) -> float:
    value = build_registry(agent, ReloadReport()).get_sample_value(name)
    assert value is not None, name
    return value


async def _until(condition: Any, what: str, timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


async def test_held_alerts_are_refused_once_and_their_retries_counted_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handover, "OUTBOX_RETRY_S", 0.05)  # many retries in little time
    state = tmp_path / "state"
    rules = [{**HEALTHY_RULE, "id": f"high-{n}"} for n in range(RULES)]
    document: dict[str, Any] = fault_site_document(state, rules)
    document["storage"]["max_bytes"] = "1KB"  # one alert at most
    async with running_agent(SiteConfig.model_validate(document), state) as agent:
        await feed(agent, [good("healthy", 80.0)])
        await _until(lambda: agent.holding_alerts > 0, "alerts held")
        # Retried again and again while nothing leaves the outbox.
        await _until(lambda: agent.counters.outbox_retries >= 20, "twenty retries")
        # Read once settled: the count is set before the first offer stores what fits.
        held = agent.holding_alerts
        assert held >= RULES - 1

        outbox_refusals = (await asyncio.to_thread(agent.outbox.stats)).refused
        assert outbox_refusals >= 20 * held  # the outbox saw every retry...
        assert _sample(agent, "edge_agent_outbox_refused_total") == held  # ...we count alerts
        retries = _sample(agent, "edge_agent_outbox_retries_total")
        assert retries >= 20

        # The forwarder's part: drain the outbox until every alert got in, each once.
        delivered: list[str] = []
        async with asyncio.timeout(30):
            while len(delivered) < RULES:
                items = await asyncio.to_thread(agent.outbox.lease, 10)
                await asyncio.to_thread(agent.outbox.ack, [i.id for i in items])
                delivered += [str(i.payload["rule"]) for i in items]
                await asyncio.sleep(0.02)
        assert sorted(delivered) == sorted(rule["id"] for rule in rules)
        assert agent.holding_alerts == 0
        assert _sample(agent, "edge_agent_outbox_refused_total") == held
        assert _sample(agent, "edge_agent_outbox_retries_total") >= retries


def test_a_refused_alert_is_new_once_and_forgotten_once_stored() -> None:
    refused = RefusedAlerts()
    first = [{"event_id": "a"}, {"event_id": "b"}]
    assert not refused.is_retry(first)
    assert refused.newly_refused(first) == 2
    assert refused.is_retry(first)
    assert refused.newly_refused(first) == 0
    # "a" was stored, "c" joined: only "c" is new.
    later = [{"event_id": "b"}, {"event_id": "c"}]
    assert refused.is_retry(later)
    assert refused.newly_refused(later) == 1
    # Everything stored: nothing held is a retry.
    assert not refused.is_retry([{"event_id": "d"}])
