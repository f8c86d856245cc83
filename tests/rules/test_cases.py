"""Rule cases kept as data: ``tests/testcases/rules/<case>/``.

Each case has ``site.yaml``, ``trace.jsonl`` and ``expected.jsonl`` (what ``edge-agent
replay`` prints), and optionally ``until`` (the ``--until`` time). The trace runs through
the replay code path. ``alert_id`` is compared only where the expected line has one; every
case also checks that all events of an episode share the id derived from (site, rule,
activation time).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.alerts import make_alert_id, parse_time
from edge_agent.commands.replay import load_site_config, replay_readings

CASES_DIR = Path(__file__).parent.parent / "testcases" / "rules"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if p.is_dir())


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES)
def test_rule_case(case: str) -> None:
    folder = CASES_DIR / case
    config = load_site_config(folder / "site.yaml")
    until_file = folder / "until"
    until = parse_time(until_file.read_text().strip()) if until_file.exists() else None
    with (folder / "trace.jsonl").open() as trace:
        events, _ = replay_readings(config, trace, until)
    actual = [event.to_replay_json() for event in events]
    expected = [json.loads(line) for line in (folder / "expected.jsonl").read_text().splitlines()]
    # Peak and limit reach the work order text: every golden rule event pins them.
    assert all({"peak", "limit"} <= line.keys() for line in expected if "rule" in line)
    compared = [
        {k: v for k, v in line.items() if k != "alert_id" or "alert_id" in want}
        for line, want in zip(actual, expected, strict=False)
    ] + actual[len(expected) :]
    assert compared == expected

    # One alert id per episode, derived from the rule's episode number.
    open_ids: dict[str, str] = {}
    episodes: dict[str, int] = {}
    for event in events:
        if event.rule_id is None:
            continue
        if event.kind == "activated":
            assert event.rule_id not in open_ids, "second activation in one episode"
            episodes[event.rule_id] = episodes.get(event.rule_id, 0) + 1
            number = episodes[event.rule_id]
            assert event.alert_id == make_alert_id(config.site.id, event.rule_id, number)
            open_ids[event.rule_id] = event.alert_id
        else:
            assert event.alert_id == open_ids[event.rule_id]
        if event.kind == "cleared":
            del open_ids[event.rule_id]
