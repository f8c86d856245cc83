"""Two sources (a Modbus poller and an OPC UA subscription, say) delivering to
the sink concurrently, with jobs and ticks between them: every trip and clear of each
sensor's rule reaches the handover once and in order, whichever path (inline or queued)
each batch took."""

from __future__ import annotations

import asyncio
import random

from edge_agent.readings import Quality, Reading
from tests.service.test_rules_inline_feed import _loop, _settle

CYCLES = 60


def _reading(sensor: str, value: float) -> Reading:
    return Reading(sensor, value, Quality.GOOD, 0)


async def _source(loop: object, sensor: str, trip: float, ok: float, seed: int) -> None:
    rng = random.Random(seed)
    sink = loop.sink  # type: ignore[attr-defined]
    for cycle in range(CYCLES):
        value = trip if cycle % 2 == 0 else ok
        await sink([_reading(sensor, value)])
        for _ in range(rng.randrange(3)):
            await asyncio.sleep(0)
        if rng.random() < 0.1:
            await asyncio.sleep(0.001)


async def test_two_sources_feeding_concurrently_keep_every_episode_once_in_order() -> None:
    loop, handover = _loop()
    task = asyncio.create_task(loop.run())
    await _settle()
    sources = [
        _source(loop, "healthy", 80.0, 1.0, seed)  # healthy-high: > 50
        for seed in (1,)
    ] + [_source(loop, "odd", -5, 5, 2)]  # odd-low: < 0
    await asyncio.gather(*sources)
    await _settle()
    await asyncio.sleep(0.3)
    loop.queue.put_nowait(None)
    await task
    ids = [m["event_id"] for m in handover.admitted]
    assert len(ids) == len(set(ids)), "an alert admitted twice"
    for rule in ("healthy-high", "odd-low"):
        # The engine's chattering hold comes in after a few episodes: the episodes
        # themselves still alternate, each once.
        kinds = [
            m["event"]
            for m in handover.admitted
            if m["rule"] == rule and m["event"] in ("activated", "cleared")
        ]
        assert kinds and kinds == ["activated", "cleared"] * (len(kinds) // 2), (rule, kinds)
    assert sum(loop.counters.readings.values()) == 2 * CYCLES
    assert loop.counters.rule_errors == 0
