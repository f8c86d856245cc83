"""Rules with absurd-but-valid-looking fields and values, next to a healthy rule.

Whatever the odd rule holds (durations of millions of days, limits at the edge of a float,
format specs nobody meant, integers no float can hold, strings where numbers belong), the
invariants hold: the healthy rule's alarm of the same evaluation becomes an outbox item,
the rules task keeps running, and a failure is that rule's fault (counted, in /readyz).
A site the model refuses outright is a fine outcome too (refused with a message).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edge_agent.config.models import SiteConfig
from edge_agent.rules import RuleEngine
from tests.service.rule_agent import (
    HEALTHY_RULE,
    activations,
    fault_site_document,
    feed,
    good,
    running_agent,
    wait_queued,
)

DURATIONS = st.sampled_from(
    [
        "0s",
        "1ms",
        "1s",
        "10m",
        "99999999d",
        "999999999999d",
        "99999999999999999999d",
        "0.0000001ms",
        "1d1ms",
    ]
)
FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, 1.0, 2.0**63, -(2.0**63)]),
    st.floats(allow_nan=False, allow_infinity=False),
)
VALUES = st.one_of(
    FLOATS,
    st.sampled_from([10**400, -(10**400), 2**63, -(2**63) - 1, 2**1000, 0, 1]),
    st.integers(),
    st.booleans(),
    st.sampled_from(["99.5", "", "nan", "{value}", "\x00"]),
    st.floats(),  # NaN and infinities: bad readings, never a crash
)
TITLES = st.sampled_from(
    [
        "x",
        "{value:.2f}",
        "{value:>999}",
        "{value:,}",
        "{peak:e} since {started_at}",
        "{duration} {limit:.0%}",
        "{value!r:^40}",
        "{asset.name:{unit}}",
        "{started_at:%Y}",
    ]
)


@st.composite
def odd_rules(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {"id": "odd-rule", "asset": "P-101", "sensor": "odd"}
    condition = draw(st.sampled_from(["high", "low", "band", "rate", "flatline", "equals"]))
    if condition in ("high", "band"):
        rule["high"] = {"limit": draw(FLOATS), "deadband": abs(draw(FLOATS))}
    if condition in ("low", "band"):
        rule["low"] = {"limit": draw(FLOATS), "deadband": abs(draw(FLOATS))}
    if condition == "rate":
        above = abs(draw(FLOATS)) or 1e-300
        rule["rate"] = {"above": above, "per": draw(DURATIONS)}
    if condition == "flatline":
        rule["flatline"] = {"for": draw(DURATIONS), "tolerance": abs(draw(FLOATS))}
    if condition == "equals":
        rule["equals"] = draw(st.one_of(st.booleans(), FLOATS, st.text(max_size=5)))
    for key in ("on_delay", "off_delay", "cooldown", "stale_after"):
        if draw(st.booleans()):
            rule[key] = draw(DURATIONS)
    rule["on_stale"] = draw(st.sampled_from(["hold", "clear", "alarm"]))
    rule["inclusive"] = draw(st.booleans())
    if draw(st.booleans()):
        rule["escalate"] = [{"above": draw(FLOATS), "priority": "HIGH"}]
    if draw(st.booleans()):
        rule["chattering"] = {
            "activations": draw(st.sampled_from([2, 3, 10**9])),
            "window": draw(DURATIONS),
        }
    rule["work_order"] = {"title": draw(TITLES), "description": draw(TITLES)}
    if draw(st.booleans()):
        rule["work_order"]["due_in"] = draw(DURATIONS)
    return rule


def _config(state: Path, odd: dict[str, Any]) -> SiteConfig | None:
    try:
        return SiteConfig.model_validate(fault_site_document(state, [odd, HEALTHY_RULE]))
    except ValidationError as exc:
        assert "rules" in str(exc)
        event("refused by the model")
        return None


@settings(max_examples=200)
@given(odd=odd_rules(), values=st.lists(VALUES, min_size=1, max_size=4))
def test_engine_keeps_the_healthy_rules_event(odd: dict[str, Any], values: list[Any]) -> None:
    config = _config(Path("/nonexistent-state"), odd)
    if config is None:
        return
    engine = RuleEngine(config)
    base = 1_780_000_000 * 10**9
    for step, value in enumerate(values):
        engine.feed(good("odd", value, base + step * 10**9))
    events = engine.feed(good("healthy", 80.0, base + len(values) * 10**9))
    assert "healthy-high" in [e.rule_id for e in events if e.kind == "activated"]
    assert set(engine.faults.faulted) <= {"odd-rule"}


async def _agent_run(state: Path, config: SiteConfig, values: list[Any]) -> None:
    async with running_agent(config, state) as agent:
        for value in values[:-1]:
            await feed(agent, [good("odd", value)])
        # The healthy alarm comes in the same evaluation as the odd rule's last value.
        await feed(agent, [good("odd", values[-1]), good("healthy", 80.0)])
        alerts = await wait_queued(agent, lambda a: bool(activations(a, "healthy-high")))
        [healthy] = activations(alerts, "healthy-high")
        assert healthy["work_order"]["title"] == "Pump P-101: 80.0 bar"
        assert agent.task_failures() == []
        assert set(agent.engine.faults.faulted) <= {"odd-rule"}


@settings(max_examples=40)
@given(odd=odd_rules(), values=st.lists(VALUES, min_size=1, max_size=3))
def test_agent_delivers_the_healthy_rules_alarm(odd: dict[str, Any], values: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        state = Path(directory) / "state"
        config = _config(state, odd)
        if config is None:
            return
        asyncio.run(_agent_run(state, config, values))
