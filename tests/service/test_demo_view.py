"""The demo's screen and summary render from a plain snapshot (no terminal needed)."""

from __future__ import annotations

from typing import Any

from edge_agent.demo.view import render, summary


def _view(forwarder: str | None) -> dict[str, Any]:
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
            },
            {"sensor": "r1", "value": True, "quality": "good", "reason": None, "unit": ""},
        ],
        "rules": {"p101-bearing-hot": "ACTIVE"},
        "connections": {"plc1": True, "ua1": False},
        "forwarder": forwarder,
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
    assert "BAD BadSensorFailure" in text and "r1                   on" in text
    assert "p101-bearing-hot       ACTIVE" in text
    assert "plc1 up   ua1 DOWN   forwarder DOWN" in text
    assert "outbox  1 waiting, 0 dead letters" in text
    assert "#1003  HIGH    Pump: bearing 97.0 degC" in text
    assert "10:00:00 activated  p101-bearing-hot MEDIUM" in text
    assert "forwarder idle" in render(_view("idle"), colour=False)
    assert "forwarder up" in render(_view("up"), colour=False)


def test_summary_lists_work_orders() -> None:
    text = summary(_view("up"), 30.2, None)
    assert "work orders created at MaintainX: 1" in text
    assert "#1003 [HIGH] Pump: bearing 97.0 degC" in text
    assert "alerts still in the outbox: 1" in text
    assert "agent's log" not in text
