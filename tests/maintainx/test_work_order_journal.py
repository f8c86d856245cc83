"""Every work order the agent creates or changes leaves one INFO line naming the rule, the
alert id and the work order id (issue 21 §3: an alarm traced from ``journalctl`` alone)."""

from __future__ import annotations

import logging

import pytest

from edge_agent.outbox.store import Outbox
from edge_agent.simulators.maintainx import Emulator
from tests.maintainx.conftest import Start, alert, wait_until


async def test_one_info_line_per_work_order_change(
    emulator: Emulator,
    asset_id: int,
    outbox: Outbox,
    start: Start,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.forwarders.maintainx")
    outbox.put_many(
        [
            alert(1, asset_mx=asset_id),
            alert(1, "escalated", asset_mx=asset_id, priority="HIGH", qualifier="HIGH"),
            alert(1, "cleared", asset_mx=asset_id),
            alert(3, asset_mx=asset_id, notify=False),  # no work order: no info line
        ]
    )
    forwarder = start(emulator.url)
    await wait_until(lambda: forwarder.status.sent == 4)
    (work_order,) = emulator.work_orders
    lines = [
        r
        for r in caplog.records
        if r.levelno == logging.INFO and getattr(r, "work_order_id", None) is not None
    ]
    assert [r.getMessage() for r in lines] == [
        "Work order created.",
        "Work order escalated.",
        "Work order commented.",
    ]
    for record in lines:
        assert record.__dict__["rule"] == "p101-temp-high"
        assert record.__dict__["alert_id"] == alert(1)["alert_id"]
        assert record.__dict__["work_order_id"] == work_order["id"]
    assert [r.__dict__["alert_event"] for r in lines] == ["activated", "escalated", "cleared"]
