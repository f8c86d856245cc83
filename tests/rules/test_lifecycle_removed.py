"""A held rule removed by a reload: its holds end with an audit event each and a log line
(never silently), and a rule added back with the same id starts without them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edge_agent.common.time_units import NS_PER_S
from edge_agent.rules import RuleEngine, RuleStateStore, to_alert_message
from edge_agent.rules.lifecycle import DEFAULT_MAX_SHELVE_NS, parse_command
from edge_agent.rules.lifecycle_removed import REMOVED_REASON
from tests.rules.conftest import BASE_NS, reading, site

HOT = {"id": "hot", "asset": "p101", "sensor": "temp", "high": {"limit": 80}}
LOW = {"id": "low", "asset": "p101", "sensor": "level", "low": {"limit": 10}}


def command(command_id: str, action: str, rule: str, **fields: str) -> object:
    body = {"id": command_id, "action": action, "rule": rule, "by": "maria", "reason": "work"}
    return parse_command({**body, **fields}, max_shelve_ns=DEFAULT_MAX_SHELVE_NS)


def held_engine(tmp_path: Path) -> RuleEngine:
    engine = RuleEngine(site([HOT, LOW]), RuleStateStore(tmp_path / "rules.json"))
    assert engine.apply_command(command("c1", "shelve", "hot", **{"for": "2h"}), BASE_NS).ok  # type: ignore[arg-type]
    assert engine.apply_command(command("c2", "oos", "low"), BASE_NS).ok  # type: ignore[arg-type]
    engine.tick(BASE_NS + NS_PER_S)
    return engine


# (rules after the reload, the events the next call returns: rule and kind)
CASES = [
    ("hot removed", [LOW], [("hot", "unshelved")]),
    ("low removed", [HOT], [("low", "returned_to_service")]),
    ("both removed", [], [("hot", "unshelved"), ("low", "returned_to_service")]),
    ("hot renamed", [{**HOT, "id": "hot-2"}, LOW], [("hot", "unshelved")]),
    ("nothing removed", [LOW, HOT], []),
]


@pytest.mark.parametrize(("what", "rules", "expected"), CASES, ids=[c[0] for c in CASES])
def test_a_reload_that_removes_a_held_rule_says_so(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    what: str,
    rules: list[dict[str, object]],
    expected: list[tuple[str, str]],
) -> None:
    engine = held_engine(tmp_path)
    config = site(rules)
    with caplog.at_level(logging.WARNING, logger="edge_agent.rules.lifecycle_removed"):
        engine.reconfigure(config)
    events = engine.tick(BASE_NS + 2 * NS_PER_S)
    assert [(e.rule_id, e.kind) for e in events] == expected, what
    for event in events:
        assert event.reason == REMOVED_REASON and event.by == "edge-agent"
        assert event.notify is False and event.time_ns == BASE_NS + NS_PER_S
    assert len([r for r in caplog.records if "removed from the site file" in r.message]) == len(
        expected
    )
    assert engine.tick(BASE_NS + 3 * NS_PER_S) == []  # said once


def test_a_rule_renamed_and_back_starts_without_its_hold_and_notifies(tmp_path: Path) -> None:
    engine = held_engine(tmp_path)
    engine.reconfigure(site([{**HOT, "id": "hot-2"}, LOW]))
    removed = engine.tick(BASE_NS + 2 * NS_PER_S)
    engine.reconfigure(site([HOT, LOW]))
    assert engine.tick(BASE_NS + 3 * NS_PER_S) == []
    rows = {row["rule"]: row for row in engine.alarms_view(BASE_NS + 3 * NS_PER_S)}
    assert rows["hot"]["shelved"] is None
    assert rows["low"]["out_of_service"] is not None  # a rule kept keeps its hold
    activated = engine.feed(reading(10, 90.0))
    assert [(e.kind, e.notify, e.held) for e in activated] == [("activated", True, None)]
    # The removal's event id is its own (not an expiry's, not a second removal's).
    ids = [to_alert_message(e, site([HOT]))["event_id"] for e in removed]  # type: ignore[index]
    assert len(ids) == 1 and "removed-c1" in str(ids[0])


def test_a_restart_without_a_held_rule_logs_the_dropped_hold(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = held_engine(tmp_path)
    assert engine.close()
    with caplog.at_level(logging.WARNING, logger="edge_agent.rules.lifecycle_removed"):
        again = RuleEngine(site([LOW]), RuleStateStore(tmp_path / "rules.json"))
    dropped = [r for r in caplog.records if "no longer in the site file" in r.message]
    assert [(r.rule, r.hold) for r in dropped] == [("hot", "shelve")]  # type: ignore[attr-defined]
    assert {row["rule"] for row in again.alarms_view(BASE_NS)} == {"low"}
