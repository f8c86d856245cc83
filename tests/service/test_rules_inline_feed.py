"""The sink feeds a batch to the engine itself when the rules task is idle (no queue hop,
no wake-up of that task per batch), and only then: the same events, counters and latest
readings as the queue gives, in the same order; a queued batch, a tick or flush due, a
job, a work order change, held alerts and a cancelled rules task all send the batch
through the queue as before."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.readings import Quality, Reading
from edge_agent.rules import RuleEngine
from edge_agent.service import agent_clock
from edge_agent.service.handover import PipelineCounters
from edge_agent.service.rules_loop import RulesLoop
from tests.service.rule_agent import HEALTHY_RULE, fault_site

SECOND = 1_000_000_000
RULES = [HEALTHY_RULE, {"id": "odd-low", "asset": "P-101", "sensor": "odd", "low": {"limit": 0}}]


class _Hold:
    def due(self) -> bool:
        return True


class _Handover:
    """What the rules loop uses of :class:`OutboxHandover`, in memory."""

    def __init__(self) -> None:
        self.admitted: list[dict[str, Any]] = []
        self.pending = False
        self.hold = _Hold()
        self.handed_over = 0

    def recover(self) -> None:
        pass

    def admit(self, messages: list[dict[str, Any]]) -> None:
        self.admitted.extend(messages)

    def save_rule_state(self, *, force: bool = False) -> None:
        pass

    async def hand_over(self) -> None:
        self.handed_over += 1
        self.pending = False


class _QueuedOnly(RulesLoop):
    """The rules loop as it was: every batch through the queue."""

    def _may_feed_here(self) -> bool:
        return False


@contextmanager
def _clock() -> Iterator[list[int]]:
    """The agent clock as the test sets it: both runs stamp each batch alike."""
    now = [SECOND]
    with mock.patch.object(agent_clock, "now_ns", lambda: now[0]):
        yield now


def _loop(cls: type[RulesLoop] = RulesLoop) -> tuple[RulesLoop, _Handover]:
    config = fault_site(Path("unused-state"), RULES)
    handover = _Handover()
    loop = cls(config, PipelineCounters(), handover, None)  # type: ignore[arg-type]
    loop.engine = RuleEngine(config)
    return loop, handover


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def _reading(sensor: str, value: float | int | None) -> Reading:
    quality = Quality.BAD if value is None else Quality.GOOD
    return Reading(sensor, value, quality, 0, None if value is not None else "timeout")


def _counted(loop: RulesLoop) -> int:
    return sum(loop.counters.readings.values())


async def _run(cls: type[RulesLoop], batches: Sequence[Sequence[Reading]]) -> dict[str, Any]:
    loop, handover = _loop(cls)
    with _clock() as now:
        task = asyncio.create_task(loop.run())
        await _settle()
        for index, batch in enumerate(batches):
            now[0] = (index + 2) * SECOND
            await loop.sink(batch)
            if index % 3:  # sometimes batches pile up before the rules task runs
                await _settle()
        await _settle()
        loop.queue.put_nowait(None)
        await task
    return {
        "events": [(e.rule_id, e.sensor_id, e.kind, e.value) for e in loop.recent_events],
        "alerts": [(m["rule"], m["event"], m["value"]) for m in handover.admitted],
        "counts": dict(loop.counters.readings),
        "alarm_events": loop.counters.alarm_events,
        "latest": dict(loop.latest),
        "errors": loop.counters.rule_errors,
    }


values = st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-100, 100))
batches = st.lists(
    st.lists(st.tuples(st.sampled_from(["healthy", "odd", "gone"]), values), max_size=6),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(batches)
def test_feeding_in_the_sink_equals_the_queue(steps: list[list[tuple[str, Any]]]) -> None:
    readings = [[_reading(sensor, value) for sensor, value in batch] for batch in steps]
    inline = asyncio.run(_run(RulesLoop, readings))
    queued = asyncio.run(_run(_QueuedOnly, readings))
    assert inline == queued


async def test_an_idle_rules_task_is_not_woken_for_a_batch() -> None:
    loop, handover = _loop()
    with _clock():
        task = asyncio.create_task(loop.run())
        await _settle()
        await loop.sink([_reading("healthy", 1.0), _reading("odd", 5)])
        # Fed before anything else ran: the task was not needed, and nothing is queued.
        assert _counted(loop) == 2 and loop.queue.empty()
        await loop.sink([_reading("healthy", 80.0)])  # trips: the events go to the task
        assert _counted(loop) == 3 and loop.queue.qsize() == 1
        assert handover.admitted == []
        await _settle()
        assert [m["rule"] for m in handover.admitted] == ["healthy-high"]
        loop.queue.put_nowait(None)
        await task


async def test_a_queued_batch_keeps_the_next_one_behind_it() -> None:
    loop, _ = _loop()
    with _clock():
        task = asyncio.create_task(loop.run())
        await _settle()
        loop.queue.put_nowait(())  # a wake-up the task has not taken yet
        first, second = _reading("healthy", 80.0), _reading("healthy", 1.0)
        await loop.sink([first])
        await loop.sink([second])
        assert _counted(loop) == 0 and loop.queue.qsize() == 3
        await _settle()
        assert loop.latest["healthy"] is second
        assert [e.kind for e in loop.recent_events] == ["activated", "cleared"]
        loop.queue.put_nowait(None)
        await task


async def test_what_needs_the_rules_task_sends_the_batch_through_the_queue() -> None:
    loop, handover = _loop()
    with _clock():
        task = asyncio.create_task(loop.run())
        await _settle()
        checks = {
            "held alerts": lambda: setattr(handover, "pending", True),
            "a job": lambda: loop._jobs.append(mock.Mock()),
            "a work order change": lambda: loop.work_order_changes.append(mock.Mock()),
            "a tick or flush due": lambda: setattr(loop, "_next_due", 0.0),
        }
        for name, make_due in checks.items():
            await _settle()
            counted = _counted(loop)
            make_due()
            await loop.sink([_reading("odd", 5)])
            assert _counted(loop) == counted, name
            assert loop.queue.qsize() == 1, name
            handover.pending = False
            loop._jobs.clear()
            loop.work_order_changes.clear()
            await _settle()
            assert _counted(loop) == counted + 1, name
        loop.queue.put_nowait(None)
        await task


async def test_a_cancelled_rules_task_is_never_fed_by_the_sink() -> None:
    # A stop that cancels the task must not find the engine ahead of what it handed over.
    loop, handover = _loop()
    with _clock():
        task = asyncio.create_task(loop.run())
        await _settle()
        task.cancel()
        await loop.sink([_reading("healthy", 80.0)])
        assert _counted(loop) == 0
        assert loop.engine.sensors["healthy"].has_value is False
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled() and loop._task is None
        await loop.sink([_reading("healthy", 80.0)])  # no task at all: queued, not fed
        assert _counted(loop) == 0 and handover.admitted == []


async def test_events_fed_just_before_the_rules_task_ends_still_reach_the_rule_state() -> None:
    # The engine has them already: a cancel before the task's turn must not drop them.
    loop, handover = _loop()
    with _clock():
        task = asyncio.create_task(loop.run())
        await _settle()
        await loop.sink([_reading("healthy", 80.0)])
        loop.queue.put_nowait(())  # queued behind, stays queued
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert [m["rule"] for m in handover.admitted] == ["healthy-high"]
        assert loop.counters.alarm_events == 1
        assert loop.queue.qsize() == 1 and loop.queue.get_nowait() == ()
