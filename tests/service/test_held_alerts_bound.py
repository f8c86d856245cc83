"""The hold beside a full outbox is bounded (``storage.max_held_alerts``): beyond it the
newest alerts are dropped, counted and logged; what is held survives a restart with the rule
state and arrives in order once the outbox has room (issue 17 §2)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config.models import SiteConfig
from edge_agent.service.held_alerts import AlertHold
from edge_agent.service.pipeline import Agent
from tests.service.rule_agent import HEALTHY_RULE, fault_site_document, feed, good, running_agent

RULES = [f"high-{n}" for n in range(6)]


async def _drain(agent: Agent, expected: int) -> list[str]:
    """Play the forwarder: take everything out of the outbox until ``expected`` came."""
    seen: list[str] = []
    async with asyncio.timeout(30):
        while len(seen) < expected:
            items = await asyncio.to_thread(agent.outbox.lease, 10)
            seen += [item.payload["rule"] for item in items]
            await asyncio.to_thread(agent.outbox.ack, [item.id for item in items])
            await asyncio.sleep(0.05)
    return seen


async def test_the_newest_beyond_the_bound_are_dropped_and_the_held_survive_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    document: dict[str, Any] = fault_site_document(
        state, [{**HEALTHY_RULE, "id": rule} for rule in RULES]
    )
    document["storage"]["max_bytes"] = "2KB"  # about two alerts
    document["storage"]["max_held_alerts"] = 2
    config = SiteConfig.model_validate(document)
    caplog.set_level(logging.ERROR, logger="edge_agent.service.held_alerts")
    async with running_agent(config, state) as agent:
        await feed(agent, [good("healthy", 80.0)])  # six rules trip in one poll
        async with asyncio.timeout(20):
            while agent.hold.dropped == 0:
                await asyncio.sleep(0.02)
        stored = [item.payload["rule"] for item in await asyncio.to_thread(agent.outbox.peek, 10)]
        held = [m["rule"] for m in agent.rule_store.pending_messages]
        # What fits is stored, the next two are held in order, the newest are dropped.
        assert stored + held == RULES[: len(stored) + 2]
        assert agent.holding_alerts == 2
        assert agent.hold.dropped == len(RULES) - len(stored) - 2
        assert agent.hold.reason == "cap"
        (record,) = [r for r in caplog.records if "the newest are dropped" in r.getMessage()]
        assert record.__dict__["dropped"] == agent.hold.dropped
        assert len(record.__dict__["alert_ids"]) == agent.hold.dropped
    # Stopped while holding: the held alerts are in the saved rule state.
    async with running_agent(config, state) as agent:
        assert [m["rule"] for m in agent.rule_store.pending_messages] == held
        seen = await _drain(agent, len(stored) + 2)
        assert seen == stored + held
        async with asyncio.timeout(10):
            while agent.holding_alerts:
                await asyncio.sleep(0.02)
        assert agent.hold.reason is None


def test_admit_keeps_the_held_and_the_oldest_new_ones() -> None:
    hold = AlertHold(limit=3)
    kept = hold.admit(
        [{"alert_id": "a"}], [{"alert_id": "b"}, {"alert_id": "c"}, {"alert_id": "d"}]
    )
    assert [m["alert_id"] for m in kept] == ["a", "b", "c"]
    assert hold.dropped == 1
    hold.wait("disk", 0.0)
    reason = hold.readiness_reason(3, "")
    assert reason.startswith("polling continues, 3 alerts held: the disk is full")
    assert "1 alerts dropped" in reason
