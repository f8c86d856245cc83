"""``edge-agent/alert@2``: the alarm lifecycle's events and fields reach the hub (which
keeps reading @1), and each new field is bounded as the others."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge_agent.hub.messages import Rejection, validate_alert
from edge_agent.wire.alert import ALERT_SCHEMA, LIFECYCLE_EVENTS
from tests.hub.conftest import make_alert


def _validate(message: dict[str, Any]) -> object:
    return validate_alert(
        "site-a", json.dumps(message).encode(), known_sites={"site-a"}, max_bytes=65536
    )


def test_the_agent_writes_alert_at_2() -> None:
    assert ALERT_SCHEMA == "edge-agent/alert@2"


@pytest.mark.parametrize("event", sorted(LIFECYCLE_EVENTS))
def test_every_lifecycle_event_is_accepted(event: str) -> None:
    message = make_alert("site-a", 1, event, notify=False, by="alice", reason="pump swap")
    message["work_order_id"] = 42
    message["comment"] = "verified: pressure normal for 30m after the repair"
    assert not isinstance(_validate(message), Rejection)


def test_a_held_activation_with_its_maintenance_comment_is_accepted() -> None:
    message = make_alert(
        "site-a", 2, notify=False, held="maintenance", work_order_id=7, comment="held"
    )
    assert not isinstance(_validate(message), Rejection)


def test_an_at_1_message_still_reads_and_has_no_lifecycle_events() -> None:
    assert not isinstance(
        _validate(make_alert("site-a", 3, schema="edge-agent/alert@1")), Rejection
    )
    old = _validate(make_alert("site-a", 4, "shelved", schema="edge-agent/alert@1"))
    assert isinstance(old, Rejection) and "event" in old.detail


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"held": "maintenance", "notify": True}, "a held message has notify: false"),
        ({"held": "lunch", "notify": False}, "held: one of"),
        ({"by": "x" * 201}, "by: a text of <= 200"),
        ({"reason": 5}, "reason: a text"),
        ({"comment": ""}, "comment: a text of 1.."),
        ({"comment": "x" * 20_001}, "comment: a text of 1.."),
        ({"work_order_id": True}, "work_order_id: an id"),
        ({"work_order_id": 2**63}, "work_order_id: an id"),
        ({"released": "lunch"}, "released: one of"),
        ({"released": "shelved", "held": "maintenance", "notify": False}, "released: only on"),
    ],
)
def test_lifecycle_fields_are_bounded(overrides: dict[str, Any], fragment: str) -> None:
    rejection = _validate(make_alert("site-a", 5, **overrides))
    assert isinstance(rejection, Rejection) and fragment in rejection.detail


def test_a_verdict_names_its_work_order() -> None:
    rejection = _validate(make_alert("site-a", 6, "verified", notify=True))
    assert isinstance(rejection, Rejection) and "work_order_id" in rejection.detail


@pytest.mark.parametrize("state", ["shelved", "out_of_service", "maintenance"])
def test_a_release_is_an_activation_that_names_the_hold_that_ended(state: str) -> None:
    assert not isinstance(_validate(make_alert("site-a", 7, released=state)), Rejection)
    cleared = _validate(make_alert("site-a", 8, "cleared", released=state))
    assert isinstance(cleared, Rejection) and "released: only on" in cleared.detail
