"""``edge-agent replay`` as a user runs it: a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edge_agent.alerts import make_alert_id

CASE = Path(__file__).parent.parent / "testcases" / "rules" / "on_delay_interrupted"


def replay(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "replay", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_replay_prints_events_as_json_lines() -> None:
    done = replay(CASE / "site.yaml", CASE / "trace.jsonl", "--until", "2026-01-05T10:00:30Z")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    expected = [json.loads(line) for line in (CASE / "expected.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in line.items() if k != "alert_id"} for line in lines] == expected
    assert all(len(line["alert_id"]) == 36 for line in lines)


def test_replay_bad_line_names_its_number(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text(
        '{"time": "2026-01-05T10:00:00Z", "sensor": "temp", "value": 81}\n'
        "\n"
        '{"time": "2026-01-05T10:00:01Z", "sensor": "temp", "value": 82\n'
    )
    done = replay(CASE / "site.yaml", trace)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"{trace}:3: error: not valid JSON (Expecting ',' delimiter at column 63)"
    ]


def test_replay_bad_time_and_missing_file(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text('{"time": "10:00", "sensor": "temp", "value": 81}\n')
    done = replay(CASE / "site.yaml", trace)
    assert done.returncode == 1
    assert done.stderr.startswith(f"{trace}:1: error: 'time' '10:00' is not an RFC 3339 time")
    done = replay(CASE / "site.yaml", tmp_path / "missing.jsonl")
    assert done.returncode == 1 and "cannot read the trace" in done.stderr


def test_replay_output_lines_are_exactly_the_documented_objects(tmp_path: Path) -> None:
    """Key order and spelling as in the issue; ``value: null`` is a bad reading (it does not
    clear); ``--until`` fires the staleness that falls before it."""
    site = CASE.parent / "high_basic" / "site.yaml"
    trace = tmp_path / "trace.jsonl"
    trace.write_text(
        '{"time": "2026-01-05T10:00:00Z", "sensor": "temp", "value": 81}\n'
        '{"time": "2026-01-05T10:00:01Z", "sensor": "temp", "value": null}\n'
        '{"time": "2026-01-05T10:00:02Z", "sensor": "temp", "value": 70, "quality": "bad"}\n'
    )
    done = replay(site, trace, "--until", "2026-01-05T10:10:00Z")
    assert done.returncode == 0, done.stderr
    alert_id = make_alert_id("plant-a", "temp-high", 1)  # the rule's first episode
    assert done.stdout.splitlines() == [
        '{"time": "2026-01-05T10:00:00Z", "rule": "temp-high", "event": "activated", '
        f'"value": 81, "priority": "MEDIUM", "alert_id": "{alert_id}", "notify": true, '
        '"peak": 81, "limit": 80.0}',
        '{"time": "2026-01-05T10:10:00Z", "sensor": "temp", "event": "stale"}',
    ]
    assert done.stderr.strip() == "edge-agent replay: 2 bad readings"


def test_replay_line_that_is_not_utf8_names_its_number(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_bytes(
        b'{"time": "2026-01-05T10:00:00Z", "sensor": "temp", "value": 81}\n'
        b'{"time": "2026-01-05T10:00:01Z", "sensor": "temp", "value": "\xff"}\n'
    )
    done = replay(CASE / "site.yaml", trace)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(f"{trace}:2: error: not UTF-8 text")


def test_unknown_sensors_are_named_at_their_first_line_and_wrong_types_counted_once(
    tmp_path: Path,
) -> None:
    """Three rules on one sensor: a text reading is one wrong-type reading, not three; a
    sensor the site lacks is named with its line and the nearest id."""
    base = (CASE.parent / "high_basic" / "site.yaml").read_text()
    site = tmp_path / "site.yaml"
    site.write_text(
        base
        + "  - {id: t2, asset: p101, sensor: temp, high: {limit: 90}}\n"
        + "  - {id: t3, asset: p101, sensor: temp, low: {limit: 9}}\n"
    )
    trace = tmp_path / "trace.jsonl"
    trace.write_text(
        '{"time": "2026-01-05T10:00:00Z", "sensor": "temp", "value": 50}\n'
        "\n"
        '{"time": "2026-01-05T10:00:01Z", "sensor": "tmep", "value": 81}\n'
        '{"time": "2026-01-05T10:00:02Z", "sensor": "temp", "value": "hot"}\n'
        '{"time": "2026-01-05T10:00:03Z", "sensor": "tmep", "value": 82}\n'
        '{"time": "2026-01-05T10:00:04Z", "sensor": "\\u001b[2J", "value": 1}\n'
    )
    done = replay(site, trace)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"{trace}:3: warning: unknown sensor `tmep` (did you mean `temp`?); 2 reading(s) skipped",
        f"{trace}:6: warning: unknown sensor `\\x1b[2J`; 1 reading(s) skipped",
        "edge-agent replay: 1 wrong type readings, 3 unknown sensor readings",
    ]


def test_a_work_order_status_of_a_rule_the_site_lacks_is_said_not_ignored(
    tmp_path: Path,
) -> None:
    """A command of an unknown rule prints a refusal line; a status did nothing, silently."""
    trace = tmp_path / "trace.jsonl"
    trace.write_text(
        '{"time": "2026-01-05T10:00:00Z", "work_order": {"rule": "no-such-rule", '
        '"status": "DONE", "id": 7}}\n'
    )
    done = replay(CASE / "site.yaml", trace)
    assert done.returncode == 0, done.stderr
    [line] = [json.loads(text) for text in done.stdout.splitlines()]
    assert line["ok"] is False and line["rule"] == "no-such-rule" and line["work_order"] == 7
    assert line["status"] == "DONE" and "no rule 'no-such-rule'" in line["message"]
