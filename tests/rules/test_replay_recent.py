"""`edge-agent replay SITE --recent 24h --rules EDITED.yaml` and `edge-agent history` on a
recorded day (issue 15): an edited deadband removes the work orders a value hovering at
its limit made, and the chattering episode; the numbers are exact."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.history.store import FILE_NAME, HistoryStore, Row
from edge_agent.readings import Quality

S = 1_000_000_000

SITE = """\
version: 1
site: {{id: plant-9, name: Plant 9}}
connections:
  plc: {{protocol: modbus-tcp, host: 127.0.0.1, port: 5020}}
assets:
  p101: {{name: Pump 101}}
sensors:
  temp: {{connection: plc, register: {{table: holding, address: 0}}, unit: degC}}
rules:
  - id: temp-high
    asset: p101
    sensor: temp
    high: {{limit: 80, deadband: {deadband}}}
storage: {{path: state}}
forwarding: {{mode: maintainx, maintainx: {{api_key: '${{MAINTAINX_API_KEY}}'}}}}
"""


def recorded_day(state: Path) -> int:
    """Two hours ago: 15 slow swings across the limit (2 min at 81, 2 min at 79), then a
    burst of three swings in 50 s, then normal. Returns the number of readings."""
    start = time.time_ns() - 2 * 3600 * S
    values: list[tuple[int, float]] = [(0, 60.0)]
    t = 60
    for _ in range(15):
        values += [(t, 81.0), (t + 120, 79.0)]
        t += 240
    for k in range(3):
        values += [(t + 20 * k, 81.0), (t + 20 * k + 10, 79.0)]
    values.append((t + 600, 60.0))
    state.mkdir()
    store = HistoryStore(state / FILE_NAME, 24 * 3600 * S, 10**8)
    store.append([Row("temp", start + s * S, v, Quality.GOOD) for s, v in values])
    store.close()
    return len(values)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(SITE.format(deadband=0.5))
    (tmp_path / "edited.yaml").write_text(SITE.format(deadband=3))
    recorded_day(tmp_path / "state")
    return path


def test_an_edited_deadband_side_by_side_with_exact_numbers(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edited = site.parent / "edited.yaml"
    assert main(["replay", str(site), "--recent", "24h", "--rules", str(edited)]) == 0
    captured = capsys.readouterr()
    assert "38 readings of the last 24h" in captured.err
    lines = captured.out.splitlines()
    assert lines[0].startswith("current rules") and lines[0].endswith("| edited rules")
    rows = lines[2:-1]
    # 15 slow swings: one work order each; the burst: two activations notify, the third
    # is the chattering one (3 in 60 s) and is held. The edit: one work order in all.
    assert sum(1 for r in rows if r.split("|")[0].strip()) == 17
    assert sum(1 for r in rows if r.split("|")[1].strip()) == 1
    assert all(
        "temp-high MEDIUM" in cell or not cell.strip() for r in rows for cell in r.split("|")
    )
    assert lines[-1] == "the edit makes 1 work order instead of 17; 1 chattering episode gone"


def test_without_rules_the_events_are_printed_as_replay_does(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(site), "--recent", "24h"]) == 0
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.count("activated") == 18 and kinds.count("chattering") == 1
    assert "17 work orders would have been made" in captured.err


def test_usage_errors_and_no_history(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(site)]) == 2
    assert "give a TRACE file or --recent DURATION" in capsys.readouterr().err
    assert main(["replay", str(site), "--recent", "soon"]) == 2
    elsewhere = site.parent / "empty"
    elsewhere.mkdir()
    assert main(["replay", str(site), "--recent", "1h", "--state-dir", str(elsewhere)]) == 1
    assert "no history in" in capsys.readouterr().err


def test_history_prints_csv_and_a_chart(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", str(site), "temp", "--since", "3h", "--csv"]) == 0
    csv = capsys.readouterr().out.splitlines()
    assert csv[0] == "time,value,quality" and len(csv) == 1 + 38
    assert csv[1].endswith(",60.0,good") and csv[2].endswith(",81.0,good")
    from edge_agent.commands.history import chart
    from edge_agent.history.store import HistoryStore as Store

    store = Store(site.parent / "state" / FILE_NAME, 0, 0)
    text = chart(list(store.rows(0, sensor="temp")), {"temp-high high": 80.0}, "temp", "degC")
    store.close()
    assert text.splitlines()[0] == "temp degC: 38 readings, 60 .. 81"
    assert any(line.endswith("| temp-high high 80") for line in text.splitlines())
    assert main(["history", str(site), "tmep"]) == 2
    assert "did you mean `temp`?" in capsys.readouterr().err


def test_the_chart_of_huge_values_one_reading_and_booleans() -> None:
    """Values near the float limit keep a finite axis; one reading is one column; a boolean
    sensor (a run contact) is charted as 0 and 1, not refused."""
    from edge_agent.commands.history import CHART_HEIGHT, chart

    now = time.time_ns()
    huge = chart(
        [Row("x", now, 1e308, Quality.GOOD), Row("x", now + S, -1e308, Quality.GOOD)], {}, "x", None
    )
    axis = [line.split("|")[0].strip() for line in huge.splitlines()[1 : 1 + CHART_HEIGHT]]
    assert axis[0] == "1e+308" and axis[-1] == "-1e+308" and "inf" not in huge
    stars = [line.split("|")[1] for line in huge.splitlines()[1 : 1 + CHART_HEIGHT]]
    assert stars[0] == "* " and stars[-1] == " *"
    one = chart([Row("x", now, 5.0, Quality.GOOD)], {}, "x", None)
    assert one.splitlines()[0] == "x: 1 readings, 5 .. 5" and one.count("*") == 1
    running = [Row("run", now + k * S, k % 2 == 1, Quality.GOOD) for k in range(4)]
    text = chart(running, {}, "run", None)
    assert text.splitlines()[0] == "run: 4 readings, 0 .. 1"
    lines = text.splitlines()[1 : 1 + CHART_HEIGHT]
    assert lines[0].split("|")[1] == " * *" and lines[-1].split("|")[1] == "* * "


def test_history_csv_keeps_a_text_value_with_commas_quotes_and_a_line_break(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv
    import io

    store = HistoryStore(site.parent / "state" / FILE_NAME, 24 * 3600 * S, 10**8)
    store.append([Row("temp", time.time_ns(), 'FAULT, "E7"\nreset', Quality.BAD)])
    store.close()
    assert main(["history", str(site), "temp", "--since", "1m", "--csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["time", "value", "quality"]
    assert rows[1][1:] == ['FAULT, "E7"\nreset', "bad"] and len(rows) == 2


def test_rules_on_a_sensor_without_history_are_said_not_silently_quiet(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An edit that renamed the sensor makes no work orders: said, or it reads as a fix."""
    edited = site.parent / "renamed.yaml"
    edited.write_text(
        SITE.format(deadband=0.5)
        .replace("    sensor: temp\n", "    sensor: flow\n")
        .replace(
            "sensors:\n",
            "sensors:\n  flow: {connection: plc, register: {table: input, address: 1}}\n",
        )
    )
    argv = ["replay", str(site), "--recent", "24h", "--rules", str(edited)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "the edit makes 0 work orders instead of 17" in captured.out
    assert "edge-agent replay: no readings of flow (rule temp-high) in the history" in captured.err
