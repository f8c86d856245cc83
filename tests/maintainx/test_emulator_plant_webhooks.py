"""The emulator's plant data webhooks and the manual meters' limit (issue 14, the smaller
items): ``ASSET_STATUS_CHANGE`` on each asset status change, ``METER_TRIGGER_STATE_CHANGE``
on each change of a trigger's state, 10 readings requests / 24 h per key for manual meters
(a batch counting as one), apart from the automated meters' bucket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from edge_agent.simulators.maintainx import Emulator
from tests.maintainx.test_emulator import receiver  # noqa: F401 - the fixture

KEY = "plant-key"


@pytest.fixture
def mx() -> Iterator[Emulator]:
    with Emulator(keys={KEY: [7]}) as emulator:  # rate limits on, as MaintainX
        yield emulator


@pytest.fixture
def api(mx: Emulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=mx.url + "/", headers=headers, timeout=5.0) as client:
        yield client


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def subscribe(api: httpx.Client, kind: str, url: str) -> None:
    answer = api.post("subscriptions", json={"type": kind, "url": url})
    assert answer.status_code == 201, answer.text


def payloads(received: list[tuple[dict[str, str], bytes]]) -> list[dict[str, Any]]:
    return [json.loads(body) for _, body in received]


def test_asset_status_changes_send_their_webhook(
    mx: Emulator,
    api: httpx.Client,
    receiver: tuple[str, list[Any]],  # noqa: F811
) -> None:
    url, received = receiver
    subscribe(api, "ASSET_STATUS_CHANGE", url)
    asset = mx.add_asset("Pump")
    for body in (
        {"status": "OFFLINE", "downtimeType": "UNPLANNED", "startedAt": now_iso()},
        {"status": "ONLINE", "startedAt": now_iso()},
    ):
        assert api.post(f"assets/{asset}/status", json=body).status_code == 201
    assert mx.wait_for(lambda: len(received) >= 2, 10)
    got = payloads(received)
    assert [(p["oldStatus"], p["newStatus"]) for p in got] == [
        (None, "OFFLINE"),
        ("OFFLINE", "ONLINE"),
    ]
    assert got[0]["downtimeType"] == "UNPLANNED" and got[0]["assetId"] == asset
    assert got[0]["orgId"] == 7


def test_meter_trigger_state_changes_send_their_webhook(
    mx: Emulator,
    api: httpx.Client,
    receiver: tuple[str, list[Any]],  # noqa: F811
) -> None:
    url, received = receiver
    subscribe(api, "METER_TRIGGER_STATE_CHANGE", url)
    subscribe(api, "ASSET_STATUS_CHANGE", url)  # another type: never sent for a trigger
    meter = api.post(
        "meters", json={"name": "temp", "unit": "degC", "measurementType": "AUTOMATED_SENSOR"}
    ).json()["id"]
    trigger = api.post(
        "metertriggers",
        json={
            "meterTrigger": {
                "meterId": meter,
                "name": "hot",
                "condition": "IS_GREATER",
                "amount": 90,
            }
        },
    ).json()["id"]
    for value in (50, 95, 97, 60):  # stable, triggered, still triggered, stable
        answer = api.post(
            "meterreadings", json=[{"meterId": meter, "value": value, "readingDate": now_iso()}]
        )
        assert answer.status_code == 201, answer.text
    assert mx.wait_for(lambda: len(received) >= 3, 10)
    got = payloads(received)
    assert [(p["oldState"], p["newState"]) for p in got] == [
        ("INSUFFICIENT_DATA", "STABLE"),
        ("STABLE", "TRIGGERED"),
        ("TRIGGERED", "STABLE"),
    ]
    assert {(p["meterTriggerId"], p["meterId"], p["orgId"]) for p in got} == {(trigger, meter, 7)}


def test_manual_meters_take_ten_requests_a_day_a_batch_counting_once(
    mx: Emulator, api: httpx.Client
) -> None:
    manual = api.post("meters", json={"name": "hand", "unit": "h", "measurementType": "MANUAL"})
    auto = api.post(
        "meters", json={"name": "auto", "unit": "h", "measurementType": "AUTOMATED_SENSOR"}
    )
    manual_id, auto_id = manual.json()["id"], auto.json()["id"]
    batch = [{"meterId": manual_id, "value": n, "readingDate": now_iso()} for n in range(5)]
    for _ in range(10):
        assert api.post("meterreadings", json=batch).status_code == 201
    refused = api.post("meterreadings", json=batch[:1])
    assert refused.status_code == 429
    assert refused.json() == {"error": "Too many requests"}
    assert refused.headers["X-Rate-Limit-Limit"] == "10"
    assert refused.headers["X-Rate-Limit-Remaining"] == "0"
    assert 86000 < int(refused.headers["X-Rate-Limit-Reset"]) <= 86400
    # Automated meters keep their own bucket.
    automated = [{"meterId": auto_id, "value": 1, "readingDate": now_iso()}]
    assert api.post("meterreadings", json=automated).status_code == 201
    assert len([r for r in mx.readings if r["meterId"] == manual_id]) == 50
    # The admin can widen it (a long test, a demo).
    admin = httpx.put(
        mx.admin_url + "/limits/manualreadings", json={"limit": 100, "window_s": 60}, timeout=5
    )
    assert admin.status_code == 200
    assert api.post("meterreadings", json=batch[:1]).status_code == 201
