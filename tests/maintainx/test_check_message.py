"""The direct forwarder checks an outbox item with the alert schema the hub runs
(edge_agent.wire.alert): one set of required fields for both ways to MaintainX."""

from __future__ import annotations

from typing import Any

import pytest

from edge_agent.forwarders.maintainx.forwarder import InvalidMessage, check_message
from edge_agent.wire.alert import alert_problem
from tests.maintainx.conftest import alert


def _without(path: str) -> dict[str, Any]:
    message = alert(1)
    *parents, last = path.split(".")
    node = message
    for key in parents:
        node = node[key]
    del node[last]
    return message


def test_a_rendered_alert_passes_both_checks() -> None:
    for event in ("activated", "escalated", "cleared", "chattering"):
        message = alert(1, event)
        assert alert_problem(message) is None
        assert check_message(message) is message


@pytest.mark.parametrize(
    "path",
    [
        # What the forwarder's own check asked for before it used the schema's...
        "event_id",
        "alert_id",
        "event",
        "time",
        "site",
        "rule",
        "priority",
        "work_order.title",
        # ...and what only the hub asked for: the direct forwarder now refuses them too.
        "schema",
        "sensor",
        "time_ns",
        "asset",
        "work_order",
    ],
)
def test_a_message_the_hub_would_refuse_is_refused_with_the_same_reason(path: str) -> None:
    message = _without(path)
    problem = alert_problem(message)
    assert problem is not None
    with pytest.raises(InvalidMessage) as refused:
        check_message(message)
    assert str(refused.value) == problem


def test_a_clear_without_its_work_order_request_is_refused_as_at_the_hub() -> None:
    message = alert(1, "cleared")
    del message["work_order"]
    with pytest.raises(InvalidMessage, match="work_order"):
        check_message(message)
