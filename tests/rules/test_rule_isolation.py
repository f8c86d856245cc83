"""One rule's exception is that rule's problem: the engine counts it, marks the rule faulted
and keeps every other rule's events (issue 10, section 1)."""

from __future__ import annotations

import logging

import pytest

from edge_agent.config.models import SiteConfig
from edge_agent.rules import RuleEngine
from edge_agent.rules.engine import RuleEngine as Engine
from edge_agent.rules.render import plain_alert_message, to_alert_message
from tests.rules.conftest import reading, site

HUGE = 10**400
"""An integer reading no float can hold: a rate over it overflows (``OverflowError``)."""

RATE_RULE = {"id": "temp-rate", "asset": "p101", "sensor": "temp", "rate": {"above": 1}}
HIGH_RULE = {"id": "temp-high", "asset": "p101", "sensor": "temp", "high": {"limit": 80}}
FLOW_RULE = {"id": "flow-high", "asset": "p101", "sensor": "flow", "high": {"limit": 5}}


def activated(events: list[object]) -> list[str | None]:
    return [e.rule_id for e in events if getattr(e, "kind", None) == "activated"]  # type: ignore[attr-defined]


def test_a_rule_that_raises_leaves_the_other_rules_events(caplog: pytest.LogCaptureFixture) -> None:
    engine = RuleEngine(site([RATE_RULE, HIGH_RULE]))
    assert engine.feed(reading(0, 20)) == []
    with caplog.at_level(logging.ERROR):
        events = engine.feed(reading(1, HUGE))
    # The rate rule is evaluated first and raises; the high rule on the same reading trips.
    assert activated(events) == ["temp-high"]
    fault = engine.faults.faulted["temp-rate"]
    assert fault.stage == "evaluate" and fault.error.startswith("OverflowError")
    assert engine.faults.errors == {"temp-rate": 1}
    failed = [r for r in caplog.records if r.getMessage().startswith("Rule failed")]
    assert [r.__dict__["rule"] for r in failed] == ["temp-rate"]
    # Failing again is counted, not logged again; the engine goes on.
    with caplog.at_level(logging.ERROR):
        engine.feed(reading(2, 20))
        engine.feed(reading(3, HUGE))
    assert engine.faults.errors == {"temp-rate": 2}
    assert engine.faults.faulted["temp-rate"].count == 2
    assert len([r for r in caplog.records if r.getMessage().startswith("Rule failed")]) == 1


def test_a_faulted_rule_stays_faulted_until_a_reload_changes_it() -> None:
    engine = RuleEngine(site([RATE_RULE, HIGH_RULE]))
    engine.feed(reading(0, 20))
    engine.feed(reading(1, HUGE))
    assert set(engine.faults.faulted) == {"temp-rate"}
    # A clean evaluation since does not clear it: the same input would fail again.
    engine.feed(reading(2, 21))
    assert set(engine.faults.faulted) == {"temp-rate"}
    # Reloading the same rule keeps it faulted; changing it clears it.
    engine.faults.forget(set())
    assert set(engine.faults.faulted) == {"temp-rate"}
    engine.faults.forget({"temp-rate"})
    assert engine.faults.faulted == {}
    assert engine.faults.errors == {"temp-rate": 1}  # the counter never goes back


def test_a_deadline_that_raises_does_not_stop_other_deadlines() -> None:
    """A rule failing at its on-delay deadline (in ``tick``) costs no other rule its event."""
    delayed = {**RATE_RULE, "on_delay": "5s"}
    engine = RuleEngine(site([delayed, {**FLOW_RULE, "on_delay": "5s"}]))
    engine.feed(reading(0, 0))
    engine.feed(reading(1, 50))  # temp-rate pending (50 per second > 1)
    engine.feed(reading(1, 9, sensor="flow"))  # flow-high pending
    rule = next(r for r in engine.rules if r.id == "temp-rate")
    rule.chatter_times = "not a list"  # type: ignore[assignment]  # a corrupt state: append raises
    events = engine.tick(reading(7, 0).source_time_ns)
    assert activated(events) == ["flow-high"]
    assert engine.faults.faulted["temp-rate"].error.startswith("AttributeError")


def overflowing_due_in(config: SiteConfig, index: int = 0) -> SiteConfig:
    """``config`` whose rule ``index`` has ``due_in: 99999999d``, the reproduced overflow.
    The validator refuses it now; set past it, as a value that slipped through would be,
    to show that rendering still defends itself."""
    work_order = config.rules[index].work_order
    assert work_order is not None
    object.__setattr__(work_order, "due_in", 99_999_999 * 86_400 * 10**9)
    return config


def test_plain_alert_message_keeps_the_ids_when_the_template_cannot_render() -> None:
    rule = {**HIGH_RULE, "work_order": {"title": "x", "due_in": "1d"}}
    config = overflowing_due_in(site([rule]))
    engine = Engine(config)
    events = engine.feed(reading(0, 99))
    [event] = [e for e in events if e.kind == "activated"]
    with pytest.raises(ValueError, match="out of range"):
        to_alert_message(event, config)  # the reproduced overflow: year 275817
    message = plain_alert_message(event, config, "ValueError: year 275817 is out of range")
    assert message is not None
    assert message["alert_id"] == event.alert_id and message["rule"] == "temp-high"
    assert message["work_order"]["due_date"] is None
    assert "could not be rendered" in message["work_order"]["description"]
    assert message["notify"] is True
