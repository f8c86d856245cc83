"""Pure pieces: signature checks, topic parsing, and the agent's work-order map."""

from __future__ import annotations

import json
from pathlib import Path

from edge_agent.forwarders.workorder_status import WorkOrderTracker
from edge_agent.hub.messages import Rejection, validate_alert
from edge_agent.hub.webhooks import sign, verify_signature
from edge_agent.wire.topics import parse_site_topic as parse_topic
from tests.hub.conftest import make_alert


def test_signature_window_and_secrets() -> None:
    body = b'{"workOrderId": 1}'
    good = sign("s1", 1000, body)
    check = lambda header, now=1000.0: verify_signature(  # noqa: E731
        header, body, ["other", "s1"], now_s=now, max_age_s=300
    )
    assert check(good) is None
    assert check(good, now=1301.0) == "timestamp outside the allowed window"
    assert check(good, now=699.0) == "timestamp outside the allowed window"  # from the future
    assert check(good.replace("t=1000", "t=1001")) == "signature does not match"
    assert check("v1=abc") == "no timestamp in the signature"
    assert check(None) == "no signature header"
    assert check(f"t=1000,v1=00,{good.split(',')[1]}") is None  # several v1 values


def test_topics_and_forged_sites() -> None:
    assert parse_topic("edge/v1", "edge/v1/site-a/alerts").site == "site-a"
    assert parse_topic("edge/v1", "edge/v1/Site_A/alerts") is None
    assert parse_topic("edge/v1", "edge/v1/site-a/alerts/x") is None
    forged = json.dumps(make_alert("site-b", 1)).encode()
    rejected = validate_alert("site-a", forged, known_sites={"site-a", "site-b"}, max_bytes=9999)
    assert isinstance(rejected, Rejection) and rejected.reason == "site_mismatch"
    assert rejected.site == "site-a"
    utf16 = json.dumps(make_alert("site-a", 1)).encode("utf-16")
    result = validate_alert("site-a", utf16, known_sites={"site-a"}, max_bytes=9999)
    assert isinstance(result, Rejection) and result.reason == "not_json"
    bad_time = json.dumps(make_alert("site-a", 1, time="yesterday")).encode()
    result = validate_alert("site-a", bad_time, known_sites={"site-a"}, max_bytes=9999)
    assert isinstance(result, Rejection) and result.reason == "invalid_fields"


def test_tracker_survives_restarts_and_ignores_other_sites(tmp_path: Path) -> None:
    tracker = WorkOrderTracker(tmp_path, "site-a")
    result = {"site": "site-a", "status": "ok", "rule": "r1", "alert_id": "a1", "work_order_id": 7}
    assert tracker.on_message("edge/v1/site-a/results", json.dumps(result).encode())
    assert not tracker.on_message("edge/v1/site-a/results", json.dumps(result).encode())
    other = dict(result, site="site-b", work_order_id=8)
    assert not tracker.on_message("edge/v1/site-a/results", json.dumps(other).encode())
    assert not tracker.on_message("edge/v1/site-a/results", b"garbage")
    assert WorkOrderTracker(tmp_path, "site-a").open_work_order_for("r1") == 7
    done = {"site": "site-a", "work_order_id": 7, "status": "DONE", "rule": "r1", "alert_id": "a1"}
    assert tracker.on_message("edge/v1/site-a/workorders/7", json.dumps(done).encode())
    assert tracker.open_work_order_for("r1") is None
    message = make_alert("site-a", 3, rule="r1")
    assert "related_work_order" not in tracker.annotate(message)  # type: ignore[arg-type]
    reopened = dict(done, status="IN_PROGRESS")
    tracker.on_message("edge/v1/site-a/workorders/7", json.dumps(reopened).encode())
    assert tracker.annotate(message)["related_work_order"] == 7  # type: ignore[arg-type]
    cleared = make_alert("site-a", 3, "cleared", rule="r1")
    assert "related_work_order" not in tracker.annotate(cleared)  # type: ignore[arg-type]
