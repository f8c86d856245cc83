"""The sink's inline feed with the real agent (state and outbox on disk): an
activation the sink fed while the rules task was idle reaches the outbox exactly once
across a stop (the task draining, or cancelled) and a restart; an engine that raises in
the sink's feed is a counted rule error and the source's next batch goes on.

Found: a reload that runs between the sink's inline feed and the rules task's turn (the
reloader's task was already ready in that loop iteration) renders the fed activation with
the *new* configuration. When the reload removed the rule, the alert goes out with an
empty asset (no MaintainX asset id: the work order is filed under no asset), a plain
title and no due date. Before the inline feed the batch went to the reconfigured engine
(or, already handed over, was rendered under the rule it fired from).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from edge_agent.readings import Reading
from edge_agent.service import pipeline
from edge_agent.service.pipeline import Agent
from edge_agent.service.rules_loop import Fed
from tests.service.rule_agent import (
    HEALTHY_RULE,
    activations,
    fault_site,
    feed,
    good,
    queued,
    wait_queued,
)

pytestmark = pytest.mark.asyncio

OTHER_RULE: dict[str, Any] = {
    "id": "odd-high",
    "asset": "P-101",
    "sensor": "odd",
    "high": {"limit": 5},
}


async def _idle(agent: Agent) -> None:
    """Until the rules task waits idle on an empty queue with nothing due."""
    for _ in range(200):
        await asyncio.sleep(0.005)
        if agent.rules._parked and agent.rules._may_feed_here():
            return
    raise AssertionError("the rules task never went idle")


async def _outbox_after_restart(config: Any, state_dir: Path) -> list[dict[str, Any]]:
    agent = Agent(config, state_dir.parent, state_dir)
    await agent.start()
    try:
        return await wait_queued(agent, lambda alerts: bool(alerts), timeout_s=5)
    finally:
        await agent.stop()


@pytest.mark.parametrize("cancelled", [False, True], ids=["drained", "cancelled"])
async def test_an_inline_fed_activation_is_sent_once_across_a_stop(
    tmp_path: Path, cancelled: bool
) -> None:
    state_dir = tmp_path / "state"
    config = fault_site(state_dir, [HEALTHY_RULE])
    agent = Agent(config, state_dir.parent, state_dir)
    await agent.start()
    await _idle(agent)
    await feed(agent, [good("healthy", 80.0)])
    # Fed inline: the engine has the activation, its events wait for the task's turn.
    assert agent.rules.queue.qsize() == 1
    if cancelled:  # a stop that finds the rules task slow: the task is cancelled
        with mock.patch.object(pipeline, "wait_done", return_value=False):
            await agent.stop()
    else:
        await agent.stop()
    alerts = await _outbox_after_restart(config, state_dir)
    assert len(activations(alerts, "healthy-high")) == 1, alerts


async def _activation_then_reload(tmp_path: Path, *, inline: bool) -> dict[str, Any]:
    """healthy-high activates (fed by the sink inline, or handed over by the task before
    the reload), then a reload removes the rule: the activation the outbox got."""
    state_dir = tmp_path / ("inline" if inline else "queued") / "state"
    config = fault_site(state_dir, [HEALTHY_RULE, OTHER_RULE])
    agent = Agent(config, state_dir.parent, state_dir)
    await agent.start()
    try:
        await _idle(agent)
        await feed(agent, [good("healthy", 80.0)])
        if inline:
            assert agent.rules.queue.qsize() == 1  # Fed: the task's turn comes after
        else:
            await wait_queued(agent, lambda a: bool(activations(a, "healthy-high")))
        await agent.apply_config(fault_site(state_dir, [OTHER_RULE]))
        alerts = await wait_queued(agent, lambda a: bool(activations(a, "healthy-high")))
        await asyncio.sleep(0.3)
        alerts = await queued(agent)
        assert len(activations(alerts, "healthy-high")) == 1, alerts
        assert agent.rules.counters.rule_errors == 0
        assert agent.engine is not None and not agent.engine.faults.reasons()
        return activations(alerts, "healthy-high")[0]
    finally:
        await agent.stop()


async def test_a_reload_in_the_same_turn_as_an_inline_feed_renders_as_before(
    tmp_path: Path,
) -> None:
    before = await _activation_then_reload(tmp_path, inline=False)
    after = await _activation_then_reload(tmp_path, inline=True)
    # The episode began under the rule as configured: its alert names the asset (the
    # MaintainX asset id the work order is filed under) and the rule's work order.
    assert after["asset"] == before["asset"], after["asset"]
    assert after["work_order"]["title"] == before["work_order"]["title"], after["work_order"]
    assert (after["work_order"]["due_date"] is None) == (before["work_order"]["due_date"] is None)


async def test_an_engine_raising_in_the_sinks_feed_is_a_counted_error(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    config = fault_site(state_dir, [HEALTHY_RULE])
    agent = Agent(config, state_dir.parent, state_dir)
    await agent.start()
    try:
        await _idle(agent)
        real_feed = agent.rules.engine.feed

        def broken(reading: Reading, received: int | None = None) -> Any:
            if reading.value == 99.0:
                raise RuntimeError("a bug in a rule")
            return real_feed(reading, received)

        with mock.patch.object(agent.rules.engine, "feed", broken):
            await feed(agent, [good("healthy", 99.0)])  # raises inside the sink's feed
            assert agent.rules.counters.rule_errors == 1
            await _idle(agent)
            await feed(agent, [good("healthy", 80.0)])
        alerts = await wait_queued(agent, lambda a: bool(activations(a, "healthy-high")))
        assert len(activations(alerts, "healthy-high")) == 1
        assert agent._rules_task is not None and not agent._rules_task.done()
    finally:
        await agent.stop()


class _StalledPlant:
    """The plant stage with a downtime rule whose meters queue is full (its task slow on
    a commit): ``offer_events`` waits."""

    async def offer(self, readings: Any, wall_ns: int) -> None:
        pass

    async def offer_events(self, events: Any) -> None:
        await asyncio.Event().wait()


async def test_events_in_the_rules_tasks_hands_when_a_stop_cancels_it_are_kept(
    tmp_path: Path,
) -> None:
    # Found (pre-existing for a queued batch, and the inline feed's Fed too): the rules
    # task took the events and waits on the plant stage (a downtime rule, a full meters
    # queue) when the stop's 3 s run out and cancel it. The engine has the activation and
    # the stop saves its state; the alert, neither admitted nor queued any more, is lost:
    # after the restart the rule is ACTIVE and nothing is ever sent.
    state_dir = tmp_path / "state"
    config = fault_site(state_dir, [HEALTHY_RULE])
    agent = Agent(config, state_dir.parent, state_dir)
    await agent.start()
    agent.rules.plant = _StalledPlant()  # type: ignore[assignment]
    await _idle(agent)
    await feed(agent, [good("healthy", 80.0)])  # fed inline; the task takes the Fed
    for _ in range(5):
        await asyncio.sleep(0)
    # In the task's hands, waiting on the plant: no longer queued.
    assert not any(isinstance(item, Fed) for item in agent.rules.queue._queue)  # type: ignore[attr-defined]
    assert agent.rules.counters.alarm_events == 1
    with mock.patch.object(pipeline, "wait_done", return_value=False):
        await agent.stop()  # the rules task is cancelled
    restarted = Agent(config, state_dir.parent, state_dir)
    await restarted.start()
    try:
        await asyncio.sleep(0.5)
        alerts = await queued(restarted)
        states = restarted.engine.rule_states() if restarted.engine is not None else {}
        assert len(activations(alerts, "healthy-high")) == 1, (alerts, states)
    finally:
        await restarted.stop()
