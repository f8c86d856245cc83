"""The work-order tracker's side of the alarm lifecycle (issue 13): which changes it hands
to the rules (each once, after it is saved), and what it keeps across a restart."""

from __future__ import annotations

import json
from pathlib import Path

from edge_agent.forwarders.workorder_status import StatusChange, WorkOrderTracker

SITE = "plant-a"
TOPIC = f"edge/v1/{SITE}/workorders/7"


def _status(status: str, **extra: object) -> bytes:
    body = {"site": SITE, "work_order_id": 7, "status": status, "rule": "r1", "alert_id": "a1"}
    return json.dumps({**body, **extra}).encode()


def test_each_change_is_handed_over_once_and_survives_a_restart(tmp_path: Path) -> None:
    changes: list[StatusChange] = []
    tracker = WorkOrderTracker(tmp_path, SITE)
    tracker.listener = changes.append
    result = json.dumps(
        {"site": SITE, "status": "ok", "rule": "r1", "alert_id": "a1", "work_order_id": 7}
    ).encode()
    assert tracker.on_message(f"edge/v1/{SITE}/results", result)
    assert not tracker.on_message(f"edge/v1/{SITE}/results", result)  # the same answer again
    assert tracker.on_message(TOPIC, _status("IN_PROGRESS"))
    assert not tracker.on_message(TOPIC, _status("IN_PROGRESS"))  # retained, seen again
    assert tracker.on_message(TOPIC, _status("IN_PROGRESS", assigned=True))  # assigned now
    assert not tracker.on_message(TOPIC, _status("IN_PROGRESS"))  # unknown: still assigned
    assert tracker.on_message(TOPIC, _status("DONE", assigned=True))
    assert [(c.status, c.assigned) for c in changes] == [
        ("OPEN", False),
        ("IN_PROGRESS", False),
        ("IN_PROGRESS", True),
        ("DONE", True),
    ]
    assert tracker.changes == 4

    again = WorkOrderTracker(tmp_path, SITE)  # a restart: the map, with the assignee
    entry = again.snapshot()["r1"]
    assert (entry.work_order_id, entry.status, entry.assigned) == (7, "DONE", True)


def test_a_failing_listener_costs_no_change(tmp_path: Path) -> None:
    tracker = WorkOrderTracker(tmp_path, SITE)

    def broken(change: StatusChange) -> None:
        raise RuntimeError("the loop is gone")

    tracker.listener = broken
    assert tracker.record_status("r1", 7, "ON_HOLD")
    assert tracker.open_work_order_for("r1") == 7
    assert not tracker.record_status("r1", 7, "ON_HOLD")


def test_direct_mode_records_its_own_work_orders_and_statuses(tmp_path: Path) -> None:
    changes: list[StatusChange] = []
    tracker = WorkOrderTracker(tmp_path, SITE)
    tracker.listener = changes.append
    assert tracker.record_work_order("r1", "a1", 7)
    assert tracker.record_status("r1", 7, "DONE")
    # A new work order of the rule (its next episode) replaces the done one.
    assert tracker.record_work_order("r1", "a2", 8)
    assert not tracker.record_status("r1", 7, "DONE")  # the old one, closed: no news
    assert [(c.work_order_id, c.status) for c in changes] == [(7, "OPEN"), (7, "DONE"), (8, "OPEN")]


async def test_open_work_orders_in_the_map_reach_the_rules_at_start(tmp_path: Path) -> None:
    """A status saved in the map whose news the saved rule state lost (a crash between the
    two) is told again at start: the asset is under maintenance again. A DONE one is not
    (it would start a verification of an old repair)."""
    import asyncio
    import time

    from edge_agent.config.models import SiteConfig
    from tests.conftest import free_port
    from tests.service.rule_agent import HEALTHY_RULE, fault_site_document, running_agent

    state = tmp_path / "state"
    tracker = WorkOrderTracker(state, "fault-plant")
    assert tracker.record_status("healthy-high", 41, "IN_PROGRESS", alert_id="a1")
    document = fault_site_document(state, [HEALTHY_RULE])
    # MQTT to a port where nothing listens: the tracker is there, the hub never answers.
    document["forwarding"] = {"mode": "mqtt", "mqtt": {"host": "127.0.0.1", "port": free_port()}}
    async with running_agent(SiteConfig.model_validate(document), state) as agent:
        assert agent.engine is not None
        deadline = time.monotonic() + 10
        while True:
            rows = agent.engine.alarms_view(time.monotonic_ns())
            if rows[0]["maintenance"] == 41:
                break
            assert time.monotonic() < deadline, rows
            await asyncio.sleep(0.05)
