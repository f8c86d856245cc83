"""A held episode announced when its last hold ends (a release): what the testcases as data
(``tests/testcases/lifecycle/release_*``) cannot show: a chattering rule, a reload, a
restart and a save that failed, the acknowledgement watch, the reopen comment's duration."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from edge_agent.common.time_units import NS_PER_MINUTE, NS_PER_S
from edge_agent.rules import RuleEngine, RuleStateStore, to_alert_message
from edge_agent.rules.lifecycle import DEFAULT_MAX_SHELVE_NS, AlarmCommand, parse_command
from edge_agent.rules.lifecycle_text import about
from tests.rules.conftest import BASE_NS, reading, site

HOT = {"id": "hot", "asset": "p101", "sensor": "temp", "high": {"limit": 80}, "verify_for": "0s"}


def command(id: str, action: str, **fields: Any) -> AlarmCommand:
    data = {"id": id, "action": action, "rule": "hot", "by": "alice", "reason": "swap", **fields}
    return parse_command(data, max_shelve_ns=DEFAULT_MAX_SHELVE_NS)


def at(seconds: float) -> int:
    return BASE_NS + round(seconds * NS_PER_S)


def test_a_chattering_rule_keeps_its_release_held() -> None:
    rule = {**HOT, "chattering": {"activations": 2, "window": "10m"}}
    engine = RuleEngine(site([rule]))
    assert engine.apply_command(command("c-1", "shelve", **{"for": "1h"}), at(0)).ok
    for second, value in ((1, 85), (2, 70), (3, 85)):  # two activations: chattering
        engine.feed(reading(second, value))
    outcome = engine.apply_command(command("c-2", "unshelve"), at(60))
    release = [e for e in outcome.events if e.released is not None]
    assert [(e.kind, e.notify, e.released) for e in release] == [("activated", False, "shelved")]
    assert engine.counters["held_chattering"] == 1 and engine.counters["released"] == 1


def test_a_reload_that_ends_maintenance_releases_at_the_next_tick() -> None:
    def config(statuses: str) -> Any:
        cfg = site([HOT])
        data = cfg.model_dump(by_alias=True)
        data["assets"]["p101"]["maintenance"] = {"while": statuses.split()}
        return type(cfg).model_validate(data)

    engine = RuleEngine(config("IN_PROGRESS ON_HOLD"))
    engine.work_order_status("hot", 5, "ON_HOLD", at(0))
    held = engine.feed(reading(1, 85))
    assert [(e.kind, e.held) for e in held] == [("activated", "maintenance")]
    engine.reconfigure(config("IN_PROGRESS"))
    events = engine.tick(at(2))
    assert [(e.kind, e.notify, e.released, e.alert_id) for e in events] == [
        ("activated", True, "maintenance", held[0].alert_id)
    ]
    assert engine.tick(at(3)) == []


def test_a_release_made_again_after_a_failed_save_keeps_its_id(tmp_path: Path) -> None:
    """The state saved before the release (the save after it failed, the agent stopped):
    the same unshelve after the restart makes the same event, by id."""
    config = site([HOT])
    path = tmp_path / "rules.json"
    engine = RuleEngine(config, RuleStateStore(path))
    engine.apply_command(command("c-1", "shelve", **{"for": "1h"}), at(0))
    engine.feed(reading(1, 85))
    shutil.copy(path, tmp_path / "before.json")
    first = engine.apply_command(command("c-2", "unshelve"), at(60)).events
    shutil.copy(tmp_path / "before.json", path)
    again = RuleEngine(config, RuleStateStore(path)).apply_command(
        command("c-2", "unshelve"), at(60)
    )

    def ids(events: list[Any]) -> list[str]:
        messages = [to_alert_message(e, config) for e in events]
        return [m["event_id"] for m in messages if m is not None and "released" in m]

    assert len(ids(first)) == 1 and ids(again.events) == ids(first)
    assert ids(first)[0].endswith(":activated:released")


def test_a_release_survives_a_restart_and_starts_the_ack_watch(tmp_path: Path) -> None:
    config = site([{**HOT, "ack_within": "5m"}])
    path = tmp_path / "rules.json"
    engine = RuleEngine(config, RuleStateStore(path))
    engine.apply_command(command("c-1", "shelve", **{"for": "10m"}), at(0))
    engine.feed(reading(1, 85))
    # Nothing overdue while held; the restart keeps the episode unannounced.
    restarted = RuleEngine(config, RuleStateStore(path))
    events = restarted.tick(at(600))
    assert [(e.kind, e.released) for e in events] == [
        ("unshelved", None),
        ("activated", "shelved"),
    ]
    # (The sensor goes stale meanwhile: a sensor event, not the rule's.)
    before = restarted.tick(at(600) + 5 * NS_PER_MINUTE - 1)
    assert [e for e in before if e.rule_id is not None] == []
    overdue = restarted.tick(at(600) + 5 * NS_PER_MINUTE)
    assert [(e.kind, e.qualifier) for e in overdue] == [("escalated", "unacknowledged")]


def test_the_reopen_comment_says_durations_as_people_do() -> None:
    assert about(14_549_671) == "14ms"
    assert about(999) == "under 1ms"
    assert about(0) == "0s"
    assert about(599 * NS_PER_S + 999_999_999) == "9m59s"
    assert about(3723 * NS_PER_S) == "1h2m3s"
