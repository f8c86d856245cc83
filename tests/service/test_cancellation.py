"""A cancellation is never swallowed. On Python 3.11 ``asyncio.wait_for`` returns the result
when it and a cancellation arrive together, and ``suppress(CancelledError)`` around
``await task`` hides the caller's own cancellation: either way a stop would not stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge_agent.config.loader import load_site
from edge_agent.service.pipeline import Agent
from edge_agent.service.tasks import cancel_and_wait, wait_done, wait_event
from tests.conftest import free_port
from tests.service.conftest import site_document, write_site


async def test_rules_task_stops_when_cancelled_as_a_batch_arrives(tmp_path: Path) -> None:
    document = site_document(
        modbus_port=free_port(),  # nothing listens: the source retries, harmlessly
        health_port=free_port(),
        storage=tmp_path / "state",
        forwarding={},
    )
    del document["forwarding"]
    config = await asyncio.to_thread(load_site, write_site(tmp_path / "site.yaml", document))
    agent = Agent(config, tmp_path, tmp_path / "state")
    await agent.start()
    try:
        rules = agent._rules_task
        assert rules is not None
        await asyncio.sleep(0.3)  # the rules task now waits for a batch (or its tick)
        # A batch and the cancellation in the same loop iteration: the race wait_for loses.
        agent.rules.queue.put_nowait(())  # an empty batch: the sink never queues one
        rules.cancel()
        assert await wait_done(rules, 5.0), "the rules task swallowed its cancellation"
        assert rules.cancelled()
    finally:
        await agent.stop()


async def test_cancel_and_wait_leaves_the_callers_cancellation_alone() -> None:
    release = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await release.wait()  # cleanup that takes a while

    inner = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    outer = asyncio.create_task(cancel_and_wait(inner, 30.0))
    await asyncio.sleep(0.05)
    outer.cancel()  # e.g. the shutdown budget ran out
    assert await wait_done(outer, 5.0)
    assert outer.cancelled()
    release.set()
    assert await wait_done(inner, 5.0) and inner.cancelled()


async def test_cancel_and_wait_reports_a_task_that_does_not_stop() -> None:
    release = asyncio.Event()

    async def ignores_cancel() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # misbehaving: keeps running

    task = asyncio.create_task(ignores_cancel())
    await asyncio.sleep(0)
    assert await cancel_and_wait(task, 0.2) is False
    release.set()
    assert await wait_done(task, 5.0)
    assert not task.cancelled() and task.exception() is None


async def test_wait_event_times_out_or_sees_the_event() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.05) is False
    asyncio.get_running_loop().call_later(0.05, event.set)
    assert await wait_event(event, 5.0) is True
