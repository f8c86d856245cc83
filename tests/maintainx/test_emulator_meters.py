"""The emulator's meters, readings, meter triggers and asset downtime (issue 14), over real
HTTP: status codes, bodies and validation errors as the spec gives them, the readings' own
rate limit, the 3-day rule, faults on the new endpoints, and the admin counts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from edge_agent.simulators.maintainx import Emulator, Faults
from tests.maintainx.conftest import SITE_KEY

HEADERS = {"Authorization": f"Bearer {SITE_KEY}"}


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def ago(**delta: float) -> str:
    return iso(datetime.now(UTC) - timedelta(**delta))


@pytest.fixture
def mx() -> Iterator[Emulator]:
    with Emulator(keys={SITE_KEY: [1]}, rate_limiting=False) as emulator:
        yield emulator


@pytest.fixture
def api(mx: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mx.url + "/", headers=HEADERS, timeout=5.0) as client:
        yield client


@pytest.fixture
def admin(mx: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mx.admin_url + "/", timeout=5.0) as client:
        yield client


def make_meter(api: httpx.Client, kind: str = "AUTOMATED_SENSOR", **extra: Any) -> int:
    answer = api.post(
        "meters",
        json={"name": "P-101 run hours", "unit": "Hours", **extra} | {"measurementType": kind},
    )
    assert answer.status_code == 201, answer.text
    assert set(answer.json()) == {"id"}
    meter_id: int = answer.json()["id"]
    return meter_id


# ---------------------------------------------------------------------- meters


def test_meter_create_get_and_list(mx: Emulator, api: httpx.Client) -> None:
    asset = mx.add_asset("Pump P-101")
    automated = make_meter(api, assetId=asset)
    manual = make_meter(api, "MANUAL")
    got = api.get(f"meters/{automated}")
    assert got.status_code == 200
    meter = got.json()["meter"]
    assert (meter["id"], meter["assetId"], meter["measurementType"], meter["unit"]) == (
        automated,
        asset,
        "AUTOMATED_SENSOR",
        "Hours",
    )
    listed = api.get("meters", params={"measurementType": "MANUAL"}).json()
    assert [m["id"] for m in listed["meters"]] == [manual]
    by_asset = api.get("meters", params={"assets": asset}).json()
    assert [m["id"] for m in by_asset["meters"]] == [automated]
    assert api.get("meters/999999").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"unit": "Hours"}, "name"),
        ({"name": "m"}, "unit"),
        ({"name": "m", "unit": "Hours", "measurementType": "SENSOR"}, "measurementType"),
        ({"name": "m", "unit": "Hours", "assetId": 424242}, "assetId"),
    ],
)
def test_meter_create_refuses_with_the_field(
    mx: Emulator, api: httpx.Client, body: dict[str, Any], field: str
) -> None:
    answer = api.post("meters", json=body)
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["fieldPath"] == field
    assert mx.store.all_meters() == []


def test_meter_list_refuses_an_unknown_measurement_type(api: httpx.Client) -> None:
    answer = api.get("meters", params={"measurementType": "GAUGE"})
    assert answer.status_code == 400 and "error" in answer.json()


# ---------------------------------------------------------------------- readings


def test_a_batch_is_stored_and_answered_201_with_the_array(
    mx: Emulator, api: httpx.Client, admin: httpx.Client
) -> None:
    meter = make_meter(api)
    batch = [
        {"meterId": meter, "value": 10.5, "readingDate": ago(hours=2)},
        {"meterId": meter, "value": 11, "readingDate": ago(hours=1)},
        {"meterId": meter, "value": 12.25},
    ]
    answer = api.post("meterreadings", json=batch)
    assert answer.status_code == 201
    back = answer.json()
    assert [(r["meterId"], r["value"]) for r in back] == [
        (meter, 10.5),
        (meter, 11),
        (meter, 12.25),
    ]
    assert [r["readingDate"] for r in back] == [b.get("readingDate") for b in batch]
    assert all(r["createdAt"].endswith("Z") for r in back)
    counted = admin.get("meterreadings", params={"meterId": meter}).json()
    assert counted["count"] == 3 == len(mx.readings)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"meterId": "M", "value": 1}, "[1].meterId"),
        ({"meterId": 0, "value": "1"}, "[1].value"),
        ({"meterId": 0, "value": True}, "[1].value"),
        ({"meterId": 0, "value": 1, "readingDate": "yesterday"}, "[1].readingDate"),
    ],
)
def test_a_bad_reading_refuses_the_whole_batch(
    mx: Emulator, api: httpx.Client, body: dict[str, Any], field: str
) -> None:
    meter = make_meter(api)
    bad = {k: (meter if v == 0 and k == "meterId" else v) for k, v in body.items()}
    answer = api.post("meterreadings", json=[{"meterId": meter, "value": 1}, bad])
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["fieldPath"] == field
    assert mx.readings == []  # nothing of a refused batch is kept


def test_an_empty_or_non_array_body_is_refused(mx: Emulator, api: httpx.Client) -> None:
    meter = make_meter(api)
    assert api.post("meterreadings", json=[]).status_code == 400
    assert api.post("meterreadings", json={"meterId": meter, "value": 1}).status_code == 400
    assert mx.readings == []


def test_a_reading_for_an_unknown_meter_is_404(mx: Emulator, api: httpx.Client) -> None:
    answer = api.post("meterreadings", json=[{"meterId": 987654, "value": 1}])
    assert answer.status_code == 404
    assert set(answer.json()) == {"error"}


def test_the_3_day_rule_for_automated_and_iot_meters(mx: Emulator, api: httpx.Client) -> None:
    automated, iot, manual = (
        make_meter(api),
        make_meter(api, "IOT_DEVICE"),
        make_meter(api, "MANUAL"),
    )
    inside = ago(days=2, hours=23)
    outside = ago(days=3, minutes=5)
    assert (
        api.post(
            "meterreadings", json=[{"meterId": automated, "value": 1, "readingDate": inside}]
        ).status_code
        == 201
    )
    for meter in (automated, iot):
        refused = api.post(
            "meterreadings", json=[{"meterId": meter, "value": 2, "readingDate": outside}]
        )
        assert refused.status_code == 400
        error = refused.json()["errors"][0]
        assert error["fieldPath"] == "[0].readingDate" and error["fieldValue"] == outside
        assert "3 days" in error["error"]
    # A manual meter may be back-dated further.
    assert (
        api.post(
            "meterreadings", json=[{"meterId": manual, "value": 3, "readingDate": ago(days=9)}]
        ).status_code
        == 201
    )
    assert [r["value"] for r in mx.readings] == [1, 3]


def test_the_3_day_rule_after_a_4_day_outage(
    mx: Emulator, api: httpx.Client, admin: httpx.Client
) -> None:
    """The emulated MaintainX's clock runs ahead: what was recent is now too old."""
    meter = make_meter(api)
    taken = ago(hours=1)
    now = admin.post("clock", json={"advance_s": 4 * 86400}).json()["now"]
    assert datetime.fromisoformat(now.replace("Z", "+00:00")) > datetime.now(UTC) + timedelta(
        days=3
    )
    answer = api.post("meterreadings", json=[{"meterId": meter, "value": 5, "readingDate": taken}])
    assert answer.status_code == 400
    fresh = iso(datetime.now(UTC) + timedelta(days=3, hours=23))
    ok = api.post("meterreadings", json=[{"meterId": meter, "value": 6, "readingDate": fresh}])
    assert ok.status_code == 201
    assert [r["value"] for r in mx.readings] == [6]


def test_the_readings_rate_limit_is_its_own_bucket() -> None:
    with Emulator(keys={SITE_KEY: [1]}, rate_limit=2, rate_window_s=60.0) as mx:
        with (
            httpx.Client(base_url=mx.url + "/", headers=HEADERS) as api,
            httpx.Client(base_url=mx.admin_url + "/") as admin,
        ):
            meter = make_meter(api)  # one of the key's 2 general requests
            limits = {"limit": 3, "window_s": 60}
            assert admin.put("limits/meterreadings", json=limits).status_code == 200
            answers = [
                api.post("meterreadings", json=[{"meterId": meter, "value": n}]) for n in range(4)
            ]
            general = [api.get("meters") for _ in range(2)]
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    refused = answers[3]
    assert refused.json() == {"error": "Too many requests"}
    assert refused.headers["x-rate-limit-limit"] == "3"
    assert refused.headers["x-rate-limit-remaining"] == "0"
    assert int(refused.headers["x-rate-limit-reset"]) >= 1
    assert "retry-after" not in refused.headers  # MaintainX sends none
    # The readings did not spend the key's general bucket, nor the reverse.
    assert [g.status_code for g in general] == [200, 429]
    assert general[1].headers["x-rate-limit-limit"] == "2"
    assert [r["value"] for r in mx.readings] == [0, 1, 2]


def test_the_default_readings_limit_is_100_per_60_s() -> None:
    with Emulator(keys={SITE_KEY: [1]}) as mx:
        with httpx.Client(base_url=mx.url + "/", headers=HEADERS) as api:
            meter = make_meter(api)
            statuses = [
                api.post("meterreadings", json=[{"meterId": meter, "value": n}]).status_code
                for n in range(101)
            ]
    assert statuses == [201] * 100 + [429]
    assert len(mx.readings) == 100


# ---------------------------------------------------------------------- meter triggers


def trigger_body(meter: int, **overrides: Any) -> dict[str, Any]:
    trigger = {
        "meterId": meter,
        "name": "P-101 500 h service",
        "condition": "INCREMENTED_BY",
        "amount": 500,
    }
    return {
        "meterTrigger": {**trigger, **overrides},
        "workOrderTemplate": {"procedureTemplateId": 77, "data": {"priority": "MEDIUM"}},
    }


def test_meter_trigger_create_get_list_delete(mx: Emulator, api: httpx.Client) -> None:
    meter, other = make_meter(api), make_meter(api)
    created = api.post("metertriggers", json=trigger_body(meter))
    assert created.status_code == 201 and set(created.json()) == {"id"}
    trigger_id = created.json()["id"]
    api.post("metertriggers", json=trigger_body(other, name="other"))
    got = api.get(f"metertriggers/{trigger_id}").json()["meterTrigger"]
    assert (got["meterId"], got["amount"], got["condition"], got["name"]) == (
        meter,
        500,
        "INCREMENTED_BY",
        "P-101 500 h service",
    )
    assert got["state"] == "INSUFFICIENT_DATA" and got["organizationId"] == 1
    listed = api.get("metertriggers", params={"meters": meter}).json()
    assert listed["meterTriggers"] == [
        {"id": trigger_id, "name": "P-101 500 h service", "meterId": meter}
    ]
    stored = {t["id"]: t for t in mx.store.all_meter_triggers()}
    assert stored[trigger_id]["workOrderTemplate"]["procedureTemplateId"] == 77
    assert api.delete(f"metertriggers/{trigger_id}").status_code == 204
    assert api.get(f"metertriggers/{trigger_id}").status_code == 404
    assert api.delete(f"metertriggers/{trigger_id}").status_code == 404


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"meterId": 999999}, "meterTrigger.meterId"),
        ({"meterId": "1"}, "meterTrigger.meterId"),
        ({"condition": "ABOVE"}, "meterTrigger.condition"),
        ({"amount": "500"}, "meterTrigger.amount"),
        ({"name": ""}, "meterTrigger.name"),
        ({"every": "500h"}, "meterTrigger.every"),
    ],
)
def test_meter_trigger_refuses_with_the_field(
    mx: Emulator, api: httpx.Client, overrides: dict[str, Any], field: str
) -> None:
    meter = make_meter(api)
    answer = api.post("metertriggers", json=trigger_body(meter, **overrides))
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["fieldPath"] == field
    assert mx.store.all_meter_triggers() == []


def test_meter_trigger_without_its_wrapper_is_refused(api: httpx.Client) -> None:
    meter = make_meter(api)
    answer = api.post("metertriggers", json={"meterId": meter, "amount": 1, "condition": "IS_LESS"})
    assert answer.status_code == 400


# ---------------------------------------------------------------------- asset downtime


def test_asset_status_changes_are_recorded_in_order(
    mx: Emulator, api: httpx.Client, admin: httpx.Client
) -> None:
    asset = mx.add_asset("Pump P-101")
    down_at, up_at = ago(minutes=30), ago(minutes=5)
    offline = api.post(
        f"assets/{asset}/status",
        json={"status": "OFFLINE", "downtimeType": "UNPLANNED", "startedAt": down_at},
    )
    assert offline.status_code == 201
    assert offline.json()["status"] == "OFFLINE" and offline.json()["endedAt"] is None
    shown = api.get(f"assets/{asset}").json()["asset"]["status"]
    assert (shown["status"], shown["downtimeType"]) == ("OFFLINE", "UNPLANNED")
    online = api.post(f"assets/{asset}/status", json={"status": "ONLINE", "startedAt": up_at})
    assert online.status_code == 201
    statuses = admin.get(f"assets/{asset}/statuses").json()["statuses"]
    assert [s["status"] for s in statuses] == ["OFFLINE", "ONLINE"]
    assert statuses[0]["endedAt"] == up_at  # the downtime ended when it ran again
    assert api.get(f"assets/{asset}").json()["asset"]["status"]["status"] == "ONLINE"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "DOWN", "startedAt": "2026-01-01T00:00:00Z"}, "status"),
        ({"status": "OFFLINE"}, "startedAt"),
        ({"status": "OFFLINE", "startedAt": "now"}, "startedAt"),
        (
            {"status": "OFFLINE", "downtimeType": "SCHEDULED", "startedAt": "2026-01-01T00:00:00Z"},
            "downtimeType",
        ),  # fmt: skip
        (
            {
                "status": "OFFLINE",
                "startedAt": "2026-01-02T00:00:00Z",
                "endedAt": "2026-01-01T00:00:00Z",
            },
            "endedAt",
        ),  # fmt: skip
        ({"status": "OFFLINE", "startedAt": "2026-01-01T00:00:00Z", "reason": "x"}, "reason"),
    ],
)
def test_asset_status_refuses_with_the_field(
    mx: Emulator, api: httpx.Client, body: dict[str, Any], field: str
) -> None:
    asset = mx.add_asset("Pump P-101")
    answer = api.post(f"assets/{asset}/status", json=body)
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["fieldPath"] == field
    assert mx.store.all_asset_statuses() == {}


def test_asset_status_of_an_unknown_asset_is_404(api: httpx.Client) -> None:
    answer = api.post(
        "assets/424242/status", json={"status": "ONLINE", "startedAt": ago(minutes=1)}
    )
    assert answer.status_code == 404


# ---------------------------------------------------------------------- faults


def test_faults_apply_to_the_new_endpoints() -> None:
    faults = Faults(seed=1)
    with Emulator(keys={SITE_KEY: [1]}, rate_limiting=False, faults=faults) as mx:
        asset = mx.add_asset("Pump P-101")
        with httpx.Client(base_url=mx.url + "/", headers=HEADERS, timeout=0.5) as api:
            meter = make_meter(api)
            faults.error_rate = 1.0
            assert (
                api.post("meterreadings", json=[{"meterId": meter, "value": 1}]).status_code == 500
            )
            assert api.post("metertriggers", json=trigger_body(meter)).status_code == 500
            status = {"status": "OFFLINE", "startedAt": ago(minutes=1)}
            assert api.post(f"assets/{asset}/status", json=status).status_code == 500
            assert mx.readings == [] and mx.store.all_meter_triggers() == []
            # A write applied, then answered with silence: the caller cannot know it landed.
            faults.error_rate, faults.timeout_after_store_rate, faults.stall_s = 0.0, 1.0, 2.0
            for path, body in (
                ("meterreadings", [{"meterId": meter, "value": 2}]),
                ("meters", {"name": "m2", "unit": "Cycles", "measurementType": "AUTOMATED_SENSOR"}),
                ("metertriggers", trigger_body(meter)),
                (f"assets/{asset}/status", status),
            ):
                with pytest.raises(httpx.ReadTimeout):
                    api.post(path, json=body)
            faults.reset()
            faults.force_status(502, {"error": "The creation of the source failed."})
            forced = api.post("meters", json={"name": "m3", "unit": "Cycles"})
            assert forced.status_code == 502
        assert [r["value"] for r in mx.readings] == [2]
        assert len(mx.store.all_meters()) == 2 and len(mx.store.all_meter_triggers()) == 1
        assert [s["status"] for s in mx.store.all_asset_statuses()[asset]] == ["OFFLINE"]
        assert faults.injected["500"] == 3 and faults.injected["timeout_after_store"] == 4


def test_admin_inspection_refuses_bad_input(admin: httpx.Client) -> None:
    assert admin.get("meterreadings", params={"meterId": "x"}).status_code == 400
    assert admin.post("clock", json={"advance_s": -1}).status_code == 400
    assert admin.put("limits/meterreadings", json={"limit": 0, "window_s": 60}).status_code == 400
    assert admin.get("meters").json() == {"meters": []}


# ---------------------------------------------------------------------- MaintainX's own PM


def readings(api: httpx.Client, meter: int, *values: float) -> None:
    for value in values:
        answer = api.post("meterreadings", json=[{"meterId": meter, "value": value}])
        assert answer.status_code == 201


def test_an_incremented_by_trigger_opens_a_pm_every_amount(mx: Emulator, api: httpx.Client) -> None:
    asset = mx.add_asset("Pump P-101")
    meter = make_meter(api, assetId=asset)
    body = trigger_body(meter, amount=500)
    trigger_id = api.post("metertriggers", json=body).json()["id"]
    readings(api, meter, 1200.0, 1500.0, 1699.9)  # counting starts at the first: due at 1700
    assert mx.work_orders == []
    readings(api, meter, 1700.0, 1800.0, 2300.5)  # 1700 due, then 2200 due
    orders = mx.work_orders
    assert [(w["title"], w["assetId"], w["type"]) for w in orders] == [
        ("P-101 500 h service", asset, "PREVENTIVE")
    ] * 2
    trigger = api.get(f"metertriggers/{trigger_id}").json()["meterTrigger"]
    assert trigger["state"] == "TRIGGERED" and trigger["nextTriggerValue"] == 2700.0


def test_a_limit_trigger_opens_one_work_order_per_crossing(mx: Emulator, api: httpx.Client) -> None:
    meter = make_meter(api)
    above = {"meterId": meter, "name": "too hot", "condition": "IS_GREATER", "amount": 90}
    api.post("metertriggers", json={"meterTrigger": above})
    readings(api, meter, 80, 91, 95, 85, 92)
    assert [w["title"] for w in mx.work_orders] == ["too hot", "too hot"]
