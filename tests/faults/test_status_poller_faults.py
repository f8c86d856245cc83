"""Direct mode's status polls (issue 13) against a MaintainX emulator that fails: 429s, 500s,
a rejected key, a work order that does not exist, answers that are not a work order. Each
time the rule engine hears every real change exactly once and nothing else; nothing raises.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_agent.common.backoff import Backoff
from edge_agent.forwarders.maintainx.status_poller import StatusPoller
from edge_agent.forwarders.workorder_status import StatusChange, WorkOrderTracker
from edge_agent.maintainx.client import MaintainXClient
from edge_agent.maintainx.errors import CredentialsRejected
from edge_agent.simulators.maintainx import Emulator
from tests.maintainx.conftest import emulator as emulator  # the fixture
from tests.maintainx.conftest import make_client

ROUNDS = 20
"""Poll rounds a test runs at most (each bounded in time too)."""


class Harness:
    """A tracker whose changes are collected, and a poller on the emulator's client."""

    def __init__(self, tmp_path: Path, client: MaintainXClient) -> None:
        self.changes: list[StatusChange] = []
        self.rejections: list[CredentialsRejected] = []
        self.tracker = WorkOrderTracker(tmp_path, "plant-a")
        self.tracker.listener = self.changes.append
        self.client = client

        async def rejected(exc: CredentialsRejected) -> None:
            self.rejections.append(exc)

        self.poller = StatusPoller(
            self.tracker,
            lambda: self.client,
            rejected,
            rate_limit_per_min=6000,
            backoff=Backoff(0.01, 0.05, random.Random(1)),
            interval_s=0.0,
        )

    async def rounds_until(self, done: object, limit: int = ROUNDS) -> None:
        """Poll rounds (each one's pause capped small) until ``done()`` or ``limit``."""
        for _ in range(limit):
            async with asyncio.timeout(15):
                pause = await self.poller.poll_round(self.client)
            if done():  # type: ignore[operator]
                return
            await asyncio.sleep(min(pause, 0.05))


@pytest.fixture
async def harness(emulator: Emulator, tmp_path: Path) -> AsyncIterator[Harness]:
    async with make_client(emulator) as client:
        yield Harness(tmp_path, client)


async def _work_order(harness: Harness, rule: str) -> int:
    work_order_id = await harness.client.create_work_order({"title": f"{rule} high"})
    assert harness.tracker.record_work_order(rule, f"alert-{rule}", work_order_id)
    return work_order_id


async def test_429_and_500_delay_the_news_but_lose_and_double_nothing(
    emulator: Emulator, harness: Harness
) -> None:
    first = await _work_order(harness, "r1")
    second = await _work_order(harness, "r2")
    harness.changes.clear()  # the two OPENs the new work orders were announced with
    emulator.change_status(first, "IN_PROGRESS")
    emulator.change_status(second, "ON_HOLD")
    emulator.faults.force_status(500, {"error": "boom"}, count=3)
    emulator.faults.force_429(0.3)  # the client waits the advertised reset out

    await harness.rounds_until(lambda: len(harness.changes) >= 2)
    await harness.rounds_until(lambda: False, limit=3)  # more rounds: nothing new

    assert sorted((c.rule, c.status) for c in harness.changes) == [
        ("r1", "IN_PROGRESS"),
        ("r2", "ON_HOLD"),
    ]
    status = harness.poller.status
    assert status.errors >= 1 and emulator.faults.injected["forced_500"] == 3
    assert emulator.faults.injected["429"] >= 1 and harness.client.rate_limited >= 1
    assert status.changes == 2


async def test_a_rejected_key_stops_the_polls_and_says_so(
    emulator: Emulator, harness: Harness
) -> None:
    work_order_id = await _work_order(harness, "r1")
    harness.changes.clear()
    emulator.change_status(work_order_id, "IN_PROGRESS")
    emulator.faults.force_status(401, None, count=1)
    pause = await harness.poller.poll_round(harness.client)
    assert len(harness.rejections) == 1 and harness.rejections[0].status == 401
    assert harness.changes == [] and pause > 0
    # The key is accepted again (a reload): the change arrives, once.
    await harness.rounds_until(lambda: harness.changes)
    assert [(c.rule, c.status) for c in harness.changes] == [("r1", "IN_PROGRESS")]


async def test_unknown_work_orders_and_answers_that_are_not_one(
    emulator: Emulator, harness: Harness
) -> None:
    # A work order MaintainX never had (an id near the top of the range): gone, so closed.
    assert harness.tracker.record_work_order("ghost", "alert-ghost", 2**62)
    real = await _work_order(harness, "r1")
    harness.changes.clear()
    # Answers that are not a work order, then one with a status MaintainX does not have.
    emulator.faults.force_status(200, {"nothing": "here"}, count=1)
    emulator.faults.force_status(200, {"workOrder": {"id": real, "status": "EXPLODED"}}, count=1)
    await harness.rounds_until(lambda: False, limit=2)

    status = harness.poller.status
    assert status.gone == 1 and status.refused == 2
    assert [(c.rule, c.work_order_id, c.status) for c in harness.changes] == [
        ("ghost", 2**62, "CANCELED")
    ]
    assert harness.tracker.open_work_order_for("ghost") is None
    assert harness.tracker.open_work_order_for("r1") == real  # still polled, still open
    # Still polling what is real.
    emulator.change_status(real, "DONE")
    await harness.rounds_until(lambda: len(harness.changes) == 2)
    assert harness.changes[-1].status == "DONE" and harness.poller.open_work_orders() == []


async def test_the_poll_rate_fits_inside_the_rate_limit(tmp_path: Path) -> None:
    """At the default 100 requests a minute the polls take at most a quarter: one every
    2.4 s, whatever the number of open work orders."""
    tracker = WorkOrderTracker(tmp_path, "plant-a")

    async def rejected(exc: CredentialsRejected) -> None:
        return None

    poller = StatusPoller(
        tracker, lambda: None, rejected, rate_limit_per_min=100, backoff=Backoff(1, 2)
    )
    assert poller.status.request_gap_s == pytest.approx(2.4)
    assert 60 / poller.status.request_gap_s <= 100 * 0.25
