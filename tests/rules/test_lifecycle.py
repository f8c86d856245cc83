"""The alarm lifecycle's engine API: commands as they arrive (checked field by field), the
alarms view, and its state across reloads and restarts (a removed rule drops its state;
expiries are absolute times, so one that fell while the agent was down fires at once)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge_agent.common.time_units import NS_PER_HOUR, NS_PER_MINUTE, NS_PER_S
from edge_agent.rules import RuleEngine, RuleStateStore
from edge_agent.rules.lifecycle import (
    DEFAULT_MAX_SHELVE_NS,
    AlarmCommand,
    CommandError,
    parse_command,
)
from tests.rules.conftest import BASE_NS, reading, site

HOT = {"id": "hot", "asset": "p101", "sensor": "temp", "high": {"limit": 80}, "verify_for": "5m"}
COLD = {"id": "cold", "asset": "p101", "sensor": "temp", "low": {"limit": 10}}


def command(**fields: Any) -> AlarmCommand:
    data = {"id": "c-1", "action": "shelve", "rule": "hot", "by": "alice", "reason": "swap"}
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not None}
    return parse_command(data, max_shelve_ns=DEFAULT_MAX_SHELVE_NS)


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("value", "ns"),
    [
        ("2h", 2 * NS_PER_HOUR),
        ("1h30m", 90 * NS_PER_MINUTE),
        (90, 90 * NS_PER_S),
        (0.5, NS_PER_S // 2),
    ],
)
def test_durations_as_in_the_site_file_or_seconds(value: object, ns: int) -> None:
    assert command(**{"for": value}).for_ns == ns


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"id": "has space"}, "id:"),
        ({"id": "x" * 129}, "id:"),
        ({"action": "silence"}, "action: one of shelve, unshelve, oos, return, ack"),
        ({"rule": None}, "rule/asset: exactly one"),
        ({"asset": "p101"}, "rule/asset: exactly one"),
        ({"rule": None, "asset": "p101", "for": "1h"}, "asset: only oos and return"),
        ({"by": ""}, "by:"),
        ({"by": "x" * 201}, "by:"),
        ({"reason": "", "for": "1h"}, "reason:"),
        ({"reason": "x" * 1001, "for": "1h"}, "reason:"),
        ({}, "for: a shelve needs a duration"),
        ({"for": "9h"}, "for: at most 8h (alarms.max_shelve)"),
        ({"for": "0s"}, "for: must be longer than zero"),
        ({"for": -5}, "for: seconds in"),
        ({"for": True}, "for: a duration"),
        ({"for": "2 fortnights"}, "for:"),
        ({"for": "1h", "until_clear": True}, "for/until_clear"),
        ({"until_clear": "yes"}, "until_clear: true or false"),
        ({"action": "ack", "for": "1h"}, "for: only shelve and oos"),
        ({"action": "oos", "until_clear": True}, "until_clear: only a shelve"),
        ({"for": "1h", "note": "x"}, "note: only an ack"),
        ({"for": "1h", "colour": "red"}, "'colour': not a field"),
        ({"for": "1h", "reason": "a\x00b"}, "NUL"),
    ],
)
def test_a_bad_command_names_its_field(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(CommandError) as raised:
        command(**fields)
    assert fragment in str(raised.value)


def test_a_command_that_is_no_object_is_refused() -> None:
    with pytest.raises(CommandError):
        parse_command(["shelve"], max_shelve_ns=DEFAULT_MAX_SHELVE_NS)  # type: ignore[arg-type]


def test_optional_reasons() -> None:
    assert command(action="ack", reason=None, note="on it").note == "on it"
    assert command(action="unshelve", reason=None).reason == ""
    assert command(action="return", reason=None, rule=None, asset="p101").asset == "p101"


# --------------------------------------------------------------------------- the view


def test_the_alarms_view_lists_every_state_loudly() -> None:
    engine = RuleEngine(site([HOT, COLD]))
    engine.feed(reading(0, 85))
    outcome = engine.apply_command(command(**{"for": "2h"}), BASE_NS + NS_PER_S)
    assert outcome.ok and outcome.message == (
        "rule hot shelved by alice until 2026-01-05T12:00:01Z: swap"
    )
    oos = command(id="c-2", action="oos", rule=None, asset="p101", reason="overhaul")
    assert engine.apply_command(oos, BASE_NS + 2 * NS_PER_S).message == (
        "asset p101 out of service by alice: overhaul (2 rules)"
    )
    ack = command(id="c-3", action="ack", reason=None, note="seen")
    assert engine.apply_command(ack, BASE_NS + 3 * NS_PER_S).ok
    engine.work_order_status("cold", 5, "IN_PROGRESS", BASE_NS + 4 * NS_PER_S)
    engine.work_order_status("hot", 6, "DONE", BASE_NS + 5 * NS_PER_S)
    rows = {row["rule"]: row for row in engine.alarms_view(BASE_NS, wall_offset_ns=NS_PER_HOUR)}
    hot = rows["hot"]
    assert (hot["state"], hot["held"], hot["maintenance"]) == ("ACTIVE", "out_of_service", 5)
    assert hot["shelved"] == {
        "by": "alice",
        "reason": "swap",
        "at": "2026-01-05T11:00:01Z",
        "until": "2026-01-05T13:00:01Z",
        "until_clear": False,
    }
    assert hot["out_of_service"]["asset"] is True and hot["out_of_service"]["until"] is None
    assert hot["acknowledged"] == {"by": "alice", "at": "2026-01-05T11:00:03Z", "note": "seen"}
    assert hot["verifying"] == {"work_order": 6, "until": "2026-01-05T11:05:05Z"}
    assert rows["cold"]["state"] == "NORMAL" and rows["cold"]["verifying"] is None
    json.dumps(list(rows.values()))  # JSON-able as it is


def test_unknown_rules_statuses_and_ids_change_nothing() -> None:
    engine = RuleEngine(site([HOT]))
    before = engine.alarms_view(BASE_NS)
    assert engine.work_order_status("nope", 5, "IN_PROGRESS", BASE_NS) == []
    assert engine.work_order_status("hot", 5, "FIXED", BASE_NS) == []
    assert engine.work_order_status("hot", 0, "IN_PROGRESS", BASE_NS) == []
    assert engine.work_order_status("hot", True, "IN_PROGRESS", BASE_NS) == []
    assert engine.alarms_view(BASE_NS) == before and "lifecycle" not in engine.snapshot()


# --------------------------------------------------------------------------- reloads


def test_a_reload_keeps_states_of_kept_rules_and_drops_removed_ones() -> None:
    engine = RuleEngine(site([HOT, COLD]))
    engine.apply_command(command(**{"for": "2h"}), BASE_NS)
    engine.apply_command(command(id="c-2", rule="cold", action="oos"), BASE_NS)
    changed = {**HOT, "high": {"limit": 75}}  # a changed rule keeps its shelve
    engine.reconfigure(site([changed]))
    rows = engine.alarms_view(BASE_NS)
    assert [r["rule"] for r in rows] == ["hot"] and rows[0]["shelved"] is not None
    engine.reconfigure(site([changed, COLD]))  # back, but its state went with it
    assert engine.alarms_view(BASE_NS)[1]["out_of_service"] is None
    # The shelve still expires at its time after both reloads; the removal of the rule
    # out of service was said (with the next call), not dropped silently.
    events = engine.tick(BASE_NS + 2 * NS_PER_HOUR)
    assert [(e.kind, e.rule_id, e.time_ns) for e in events] == [
        ("returned_to_service", "cold", BASE_NS),
        ("unshelved", "hot", BASE_NS + 2 * NS_PER_HOUR),
    ]


# --------------------------------------------------------------------------- restarts


def _saved_wall(path: Path) -> int:
    saved_wall: int = json.loads(path.read_text())["saved_wall_ns"]
    return saved_wall


def test_an_expiry_that_fell_while_the_agent_was_down_fires_at_once(tmp_path: Path) -> None:
    """Shelved for 1h on one monotonic clock; the agent restarts (the clock starts again)
    2h later by the wall clock: the first tick reports the unshelve."""
    path = tmp_path / "rules.json"
    before = RuleEngine(site([HOT]), RuleStateStore(path))
    mono = 1000 * NS_PER_S
    assert before.apply_command(command(**{"for": "1h"}), mono).ok
    wall = _saved_wall(path)
    restart_at = 5 * NS_PER_S
    after = RuleEngine(
        site([HOT]), RuleStateStore(path), resume_at=restart_at, wall_now_ns=wall + 2 * NS_PER_HOUR
    )
    events = after.tick(restart_at)
    assert [(e.kind, e.by) for e in events] == [("unshelved", "edge-agent")]
    assert events[0].time_ns <= restart_at


def test_a_quick_restart_keeps_what_is_left_of_a_shelve(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    before = RuleEngine(site([HOT]), RuleStateStore(path))
    before.apply_command(command(**{"for": "1h"}), 1000 * NS_PER_S)
    wall = _saved_wall(path)
    restart_at = 5 * NS_PER_S
    after = RuleEngine(
        site([HOT]), RuleStateStore(path), resume_at=restart_at, wall_now_ns=wall + 60 * NS_PER_S
    )
    assert after.tick(restart_at + NS_PER_HOUR - 61 * NS_PER_S) == []
    events = after.tick(restart_at + NS_PER_HOUR - 60 * NS_PER_S)
    assert [e.kind for e in events] == ["unshelved"]


def test_a_damaged_lifecycle_state_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    engine = RuleEngine(site([HOT]), RuleStateStore(path))
    engine.apply_command(command(**{"for": "1h"}), BASE_NS)
    data = json.loads(path.read_text())
    data["lifecycle"]["rules"]["hot"]["shelved"]["by"] = 42
    path.write_text(json.dumps(data))
    store = RuleStateStore(path)
    fresh = RuleEngine(site([HOT]), store)
    assert store.discarded is not None and fresh.alarms_view(BASE_NS)[0]["shelved"] is None


def test_held_activations_are_counted_by_state() -> None:
    engine = RuleEngine(site([HOT]))
    engine.apply_command(command(**{"for": "1h"}), BASE_NS)
    engine.feed(reading(1, 85))
    engine.feed(reading(2, 70))
    engine.work_order_status("hot", 3, "IN_PROGRESS", BASE_NS + 3 * NS_PER_S)
    engine.apply_command(command(id="c-2", action="unshelve", reason=None), BASE_NS + 4 * NS_PER_S)
    engine.feed(reading(5, 85))
    counters = engine.counters
    assert (counters["held_shelved"], counters["held_maintenance"]) == (1, 1)
    assert counters["held_out_of_service"] == 0


def test_a_reload_that_narrows_maintenance_ends_it() -> None:
    def config(statuses: str) -> Any:
        cfg = site([HOT, COLD])
        data = cfg.model_dump(by_alias=True)
        data["assets"]["p101"]["maintenance"] = {"while": statuses.split()}
        return type(cfg).model_validate(data)

    engine = RuleEngine(config("IN_PROGRESS ON_HOLD"))
    engine.work_order_status("hot", 5, "ON_HOLD", BASE_NS)
    assert engine.alarms_view(BASE_NS)[1]["held"] == "maintenance"
    engine.reconfigure(config("IN_PROGRESS"))
    assert engine.alarms_view(BASE_NS)[1]["held"] is None


def test_a_status_heard_again_does_not_acknowledge_a_later_episode() -> None:
    engine = RuleEngine(site([{**HOT, "ack_within": "5m"}]))
    engine.work_order_status("hot", 5, "IN_PROGRESS", BASE_NS, assigned=True)
    engine.feed(reading(10, 85))  # a new episode while work order 5 is as it was
    assert engine.work_order_status("hot", 5, "IN_PROGRESS", BASE_NS + 20 * NS_PER_S) == []
    assert engine.alarms_view(BASE_NS)[0]["acknowledged"] is None
    # A change of the work order (someone works on it) does.
    events = engine.work_order_status("hot", 5, "ON_HOLD", BASE_NS + 30 * NS_PER_S, assigned=True)
    assert [(e.kind, e.work_order_id) for e in events] == [("acknowledged", 5)]
