"""``edge-agent replay`` as a user runs it: a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
