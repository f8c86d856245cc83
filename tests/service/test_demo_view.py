"""The demo's screen and summary render from a plain snapshot (no terminal needed)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from edge_agent.demo.view import command_name, render, summary


def _view(forwarder: str | None) -> dict[str, Any]:
    state = None
    if forwarder is not None:
        state = {
            "state": forwarder,
            "error": "POST /workorders: cannot connect (ConnectError)",
            "last_delivery_s": 4.2,
        }
    return {
        "elapsed_s": 12.5,
        "site": "Demo plant",
        "readings": [
            {"sensor": "t1", "value": 97.04, "quality": "good", "reason": None, "unit": "degC"},
            {
                "sensor": "v1",
                "value": None,
                "quality": "bad",
                "reason": "BadSensorFailure",
                "unit": "",
                "stale": True,
            },
            {"sensor": "r1", "value": True, "quality": "good", "reason": None, "unit": ""},
        ],
        "rules": {"p101-bearing-hot": "ACTIVE"},
        "connections": {"plc1": True, "ua1": False},
        "forwarder": state,
        "forwarding_to": "MaintainX",
        "outbox_depth": 1,
        "dead_letters": 0,
        "events": [
            {
                "time": "2026-01-05T10:00:00Z",
                "kind": "activated",
                "rule": "p101-bearing-hot",
                "sensor": "t1",
                "priority": "MEDIUM",
            }
        ],
        "work_orders": [
            {"id": 1003, "title": "Pump: bearing 97.0 degC", "priority": "HIGH", "asset_id": 1001}
        ],
        "steps": ["  1.0 s  bearing heats up"],
    }


def test_render_shows_every_part_plainly() -> None:
    text = render(_view("down"), colour=False)
    assert "\x1b" not in text
    assert "t1                   97.04 degC" in text
    assert "BAD BadSensorFailure STALE" in text and "r1                   on" in text
    # Each rule's state, with what it means.
    assert "p101-bearing-hot       ACTIVE    alarm raised: its alert goes to a work order" in text
    assert "sources    plc1 up   ua1 DOWN" in text
    assert (
        "forwarder  to MaintainX DOWN: POST /workorders: cannot connect (ConnectError) (retrying)"
        in text
    )
    assert "outbox     1 alert(s) waiting (kept on disk until they can be sent)" in text
    assert "#1003  HIGH    Pump: bearing 97.0 degC" in text
    assert " 10:00:00  activated  p101-bearing-hot MEDIUM" in text
    timed = _view("up")
    timed["events"][0]["at_s"] = 7.25
    assert "    7.2 s  activated  p101-bearing-hot MEDIUM" in render(timed, colour=False)
    assert "to MaintainX idle (nothing sent yet)" in render(_view("idle"), colour=False)
    up = render(_view("up"), colour=False)
    assert "to MaintainX up (last delivery 4 s ago)" in up
    assert "outbox     1 alert(s) waiting, 0 dead letters" in up
    assert "not configured" in render(_view(None), colour=False)
    assert "hub" not in up  # direct mode: no hub line
    mqtt = _view("up")
    mqtt["hub_parked"] = 1
    assert "hub        1 alert(s) held for MaintainX" in render(mqtt, colour=False)
    assert "p101-bearing-hot       ACTIVE    alarm raised" in up


def test_summary_lists_work_orders() -> None:
    text = summary(_view("up"), 30.2, None)
    assert "work orders created at MaintainX: 1" in text
    assert "#1003 [HIGH] Pump: bearing 97.0 degC" in text
    assert "alerts still in the outbox: 1" in text
    assert "agent's log" not in text


def test_the_next_hint_names_the_command_as_it_was_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make demo` runs `.venv/bin/edge-agent`, which is not on PATH: the hint says that."""
    script = tmp_path / ".venv" / "bin" / "edge-agent"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr(sys, "argv", [str(script), "demo"])
    assert command_name() == ".venv/bin/edge-agent"
    assert "Next: `.venv/bin/edge-agent validate" in summary(_view("up"), 30.2, None)
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")
    assert command_name() == "edge-agent"
    monkeypatch.setattr(sys, "argv", ["-m", "demo"])  # python -m edge_agent
    assert command_name() == "edge-agent"


def test_meters_and_downtime_show_beside_the_work_orders() -> None:
    """Issue 14: the pump's run-hours meter (its value, readings, PM trigger) and its
    downtime at MaintainX, and what the agent still queues; absent for a site without."""
    view = _view("up") | {
        "meters": [
            {
                "name": "P-101 run hours",
                "unit": "Hours",
                "value": 0.0069,
                "readings": 4,
                "triggers": ["P-101 500 h service"],
            }
        ],
        "downtime": [
            {
                "asset": "Cooling-water pump P-101",
                "status": "OFFLINE",
                "downtime_type": "UNPLANNED",
                "changes": 2,
            }
        ],
        "plant_outbox_depth": 3,
    }
    text = render(view, colour=False)
    assert text.index("work orders at MaintainX") < text.index("meters at MaintainX")
    assert "P-101 run hours        0.0069 Hours" in text
    assert "(4 readings; triggers: P-101 500 h service)" in text
    assert "Cooling-water pump P-101   OFFLINE UNPLANNED (2 changes)" in text
    assert "3 plant data item(s) waiting in the agent" in text
    closing = summary(view, 30.0, None)
    assert "P-101 run hours: 4 readings, last 0.0069 Hours" in closing
    assert "Cooling-water pump P-101 2 (now OFFLINE)" in closing
    assert "plant data still in its outbox: 3" in closing
    assert "meters at MaintainX" not in render(_view("up"), colour=False)
