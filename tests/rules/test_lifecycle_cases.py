"""The alarm lifecycle's cases kept as data: ``tests/testcases/lifecycle/<case>/``.

As ``test_cases.py``: ``site.yaml``, ``trace.jsonl`` (readings, commands and work order
statuses), ``expected.jsonl`` (what ``edge-agent replay`` prints, refused commands
included) and optionally ``until``. ``alert_id`` is compared only where the expected line
has one. Every case also checks the invariants: a held message never notifies, and each
event id (what every hop deduplicates on) is made once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.alerts import parse_time
from edge_agent.commands.replay import Refusal, load_site_config, replay_output, replay_readings
from edge_agent.rules.render import to_alert_message
from edge_agent.wire.alert import alert_problem

CASES_DIR = Path(__file__).parent.parent / "testcases" / "lifecycle"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if p.is_dir())


def test_there_are_cases_for_every_state() -> None:
    names = " ".join(CASES)
    for state in ("shelve", "out_of_service", "maintenance", "ack", "verify", "release"):
        assert state in names


@pytest.mark.parametrize("case", CASES)
def test_lifecycle_case(case: str) -> None:
    folder = CASES_DIR / case
    config = load_site_config(folder / "site.yaml")
    until_file = folder / "until"
    until = parse_time(until_file.read_text().strip()) if until_file.exists() else None
    refusals: list[Refusal] = []
    with (folder / "trace.jsonl").open() as trace:
        events, _ = replay_readings(config, trace, until, refusals=refusals)
    actual = replay_output(events, refusals)
    expected = [json.loads(line) for line in (folder / "expected.jsonl").read_text().splitlines()]
    compared = [
        {k: v for k, v in line.items() if k != "alert_id" or "alert_id" in want}
        for line, want in zip(actual, expected, strict=False)
    ] + actual[len(expected) :]
    assert compared == expected

    seen: set[str] = set()
    held_episodes: set[str] = set()
    notifying: set[str] = set()
    for event in events:
        message = to_alert_message(event, config)
        if message is None:
            continue
        assert alert_problem(dict(message)) is None, message
        assert message["event_id"] not in seen, message["event_id"]
        seen.add(message["event_id"])
        if "held" in message:
            assert message["notify"] is False
            held_episodes.add(message["alert_id"])
        if message["event"] == "activated" and message["notify"]:
            # One notifying activation per episode: its own, or the release of a held one.
            assert message["alert_id"] not in notifying, message
            notifying.add(message["alert_id"])
        if "released" in message:
            assert message["alert_id"] in held_episodes, message
            assert message["event_id"] == f"{message['alert_id']}:activated:released"
