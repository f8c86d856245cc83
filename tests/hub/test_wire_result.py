"""The hub's result and the agent's reading of it come from one module
(edge_agent.wire.result): every status the hub writes, the agent reads back as written."""

from __future__ import annotations

import json

import pytest

from edge_agent.wire.result import (
    MAX_DETAIL_CHARS,
    RESULT_SCHEMA,
    RESULT_STATUSES,
    BadMessage,
    HubResult,
    parse_result,
    result_payload,
)

NOW_NS = 1_767_225_600 * 10**9


@pytest.mark.parametrize("status", RESULT_STATUSES)
def test_what_the_hub_writes_the_agent_reads(status: str) -> None:
    payload = result_payload(
        "plant-a",
        status=status,
        time_ns=NOW_NS,
        event_id="alert-1:activated",
        alert_id="alert-1",
        rule="hot",
        action="created" if status == "ok" else None,
        work_order_id=42 if status == "ok" else None,
        reason="invalid_fields" if status == "rejected" else None,
        detail="work_order: an object with a title is required" if status == "rejected" else None,
    )
    assert json.loads(payload)["schema"] == RESULT_SCHEMA
    read = parse_result(payload)
    assert (read.event_id, read.alert_id, read.status) == ("alert-1:activated", "alert-1", status)
    if status == "rejected":
        assert read.reason == (
            "rejected by the hub: invalid_fields: work_order: an object with a title is required"
        )
    else:
        assert read.reason == ""


def test_a_rejection_the_hub_could_not_read_the_alert_id_of() -> None:
    payload = result_payload(
        "plant-a", status="rejected", time_ns=NOW_NS, event_id="e-1", reason="not_json"
    )
    expected = HubResult("e-1", None, "rejected", "rejected by the hub: not_json")
    assert parse_result(payload) == expected


def test_an_answer_that_applied_must_name_its_alert() -> None:
    payload = result_payload("plant-a", status="ok", time_ns=NOW_NS, event_id="e-1")
    with pytest.raises(BadMessage, match="alert_id"):
        parse_result(payload)


def test_the_hub_cuts_what_it_writes_to_what_the_agent_keeps() -> None:
    payload = result_payload(
        "plant-a", status="rejected", time_ns=NOW_NS, event_id="e-1", detail="x" * 10_000
    )
    assert len(json.loads(payload)["detail"]) == MAX_DETAIL_CHARS
    assert parse_result(payload).reason.endswith("x")
