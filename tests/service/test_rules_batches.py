"""How a source's batch reaches the rules: queued as it is with one arrival stamp (no copy
of each reading), fed to the engine at that stamp, counted by quality, and the rules task
still ticks when no batch comes (its timer, not a timeout per batch)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.readings import Quality, Reading
from edge_agent.rules import RuleEngine
from edge_agent.service.pipeline import Agent
from edge_agent.service.rules_loop import Batch
from tests.service.rule_agent import (
    HEALTHY_RULE,
    fault_site,
    feed,
    good,
    queued,
    running_agent,
    wait_queued,
)

SECOND = 1_000_000_000


async def _without_source(agent: Agent) -> None:
    """Stop the agent's Modbus source: only the test's batches reach the rules."""
    for name in list(agent.sources):
        await agent._stop_source(name)


async def _processed(agent: Agent, qualities: dict[str, int], timeout_s: float = 10.0) -> None:
    """Wait until the rules counted at least these readings by quality."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = agent.rules.counters.readings
        if all(counts.get(q, 0) >= n for q, n in qualities.items()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not processed: {agent.rules.counters.readings} < {qualities}")


async def test_an_on_delay_fires_with_no_batch_after_the_trip(tmp_path: Path) -> None:
    rule = {**HEALTHY_RULE, "on_delay": "300ms"}
    async with running_agent(fault_site(tmp_path / "state", [rule]), tmp_path / "state") as agent:
        await _without_source(agent)
        await feed(agent, [good("healthy", 80.0)])
        # Nothing arrives after the trip: only the tick's timer can activate the rule.
        alerts = await wait_queued(agent, lambda items: len(items) >= 1)
    assert [a["rule"] for a in alerts] == ["healthy-high"]


async def test_a_batch_runs_on_its_arrival_and_is_kept_as_the_source_gave_it(
    tmp_path: Path,
) -> None:
    async with running_agent(
        fault_site(tmp_path / "state", [HEALTHY_RULE]), tmp_path / "state"
    ) as agent:
        await _without_source(agent)
        before = dict(agent.rules.counters.readings)
        # A device clock an hour behind: the rules use the arrival time, not this.
        an_hour_ago = time.time_ns() - 3600 * SECOND
        trip = good("healthy", 80.0, an_hour_ago)
        broken = Reading("odd", None, Quality.BAD, an_hour_ago, "device not responding")
        odd = Reading("odd", 3.0, Quality.UNCERTAIN, an_hour_ago)
        await feed(agent, [trip, broken])
        await feed(agent, [odd])
        expected = {
            "good": before.get("good", 0) + 1,
            "bad": before.get("bad", 0) + 1,
            "uncertain": before.get("uncertain", 0) + 1,
        }
        await _processed(agent, expected)
        assert agent.rules.counters.readings == {**before, **expected}
        assert agent.latest["healthy"] is trip  # no copy: the source's own reading
        assert agent.latest["odd"] is odd
        alerts = await wait_queued(agent, lambda items: len(items) >= 1)
        assert [a["rule"] for a in alerts] == ["healthy-high"]
        assert len(await queued(agent)) == 1


async def test_a_wake_and_a_stop_still_pass_through_the_queue(tmp_path: Path) -> None:
    async with running_agent(
        fault_site(tmp_path / "state", [HEALTHY_RULE]), tmp_path / "state"
    ) as agent:
        await _without_source(agent)
        agent.rules.queue.put_nowait(())  # what a job's submit puts: no readings
        await agent.rules.queue.put(Batch(time.monotonic_ns(), [good("healthy", 80.0)]))
        alerts = await wait_queued(agent, lambda items: len(items) >= 1)
    assert [a["rule"] for a in alerts] == ["healthy-high"]


samples = st.lists(
    st.tuples(
        st.sampled_from(["healthy", "odd"]),
        st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-100, 100)),
        st.integers(0, 3 * SECOND),  # arrival step
        st.integers(-SECOND, SECOND),  # the source's time, off the arrival
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(samples)
def test_feeding_the_arrival_stamp_equals_feeding_a_stamped_copy(
    steps: list[tuple[str, float | int | None, int, int]],
) -> None:
    rules = [
        {**HEALTHY_RULE, "on_delay": "1s", "off_delay": "1s"},
        {"id": "odd-low", "asset": "P-101", "sensor": "odd", "low": {"limit": 0}},
    ]
    config = fault_site(Path("unused-state"), rules)
    stamped, given_stamp = RuleEngine(config), RuleEngine(config)
    received = 10 * SECOND
    for sensor, value, step, skew in steps:
        received += step
        quality = Quality.BAD if value is None else Quality.GOOD
        reading = Reading(sensor, value, quality, received + skew)
        want = stamped.feed(Reading(sensor, value, quality, received + skew, received_ns=received))
        got = given_stamp.feed(reading, received)
        assert got == want
    assert given_stamp.rule_states() == stamped.rule_states()
