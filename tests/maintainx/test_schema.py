"""The emulator's answers and the client's requests, checked against MaintainX's own OpenAPI
schemas (``data/openapi-extract.json``, cut from the published spec): the emulator stays
true to the real API, and the client sends only what the real API accepts."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_agent.maintainx.errors import (
    BadRequest,
    CredentialsRejected,
    Misconfigured,
    NotFound,
)
from edge_agent.maintainx.ledger import SqliteLedger, ThreadedLedger
from edge_agent.maintainx.sync import apply_alert, find_existing_work_order
from edge_agent.simulators.maintainx import Emulator
from tests.maintainx.conftest import SITE_KEY, alert, make_client
from tests.maintainx.jsonschema_lite import resolve, validate

SPEC: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "openapi-extract.json").read_text()
)


def _operations() -> list[tuple[str, re.Pattern[str], str]]:
    ops = []
    for template, methods in SPEC["paths"].items():
        pattern = re.compile("^/v1" + re.sub(r"\{[^}]+\}", r"\\d+", template) + "$")
        ops += [(method.upper(), pattern, template) for method in methods]
    # Longer templates first so /workorders/{id}/status wins over /workorders/{id}.
    return sorted(ops, key=lambda op: -len(op[2]))


OPERATIONS = _operations()


def _operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    for op_method, pattern, template in OPERATIONS:
        if op_method == method and pattern.match(path):
            return template, SPEC["paths"][template][method.lower()]
    raise AssertionError(f"{method} {path} is not an operation of the spec")


def _json_schema(node: dict[str, Any]) -> dict[str, Any] | None:
    node = resolve(SPEC, node)
    content = node.get("content", {}).get("application/json")
    return None if content is None else content["schema"]


def check_records(mx: Emulator) -> set[tuple[str, str, int]]:
    """Validate every logged exchange; return the (method, template, status) seen."""
    seen: set[tuple[str, str, int]] = set()
    problems: list[str] = []
    for record in mx.requests:
        if record.path.startswith("/_emulator/"):
            continue  # the emulator's admin calls are not operations of the API
        template, operation = _operation(record.method, record.path)
        where = f"{record.method} {template} -> {record.status}"
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        for name in record.query:
            if name not in declared:
                problems.append(f"{where}: query parameter {name!r} is not in the spec")
        # Bodies answered 400 were refused on purpose (the test sends some wrong ones).
        if record.body is not None and "requestBody" in operation and record.status != 400:
            schema = _json_schema(operation["requestBody"])
            assert schema is not None
            problems += [f"{where} request: {p}" for p in validate(SPEC, schema, record.body)]
        assert record.status is not None
        response_spec = operation["responses"].get(str(record.status))
        if response_spec is None:
            problems.append(f"{where}: status {record.status} is not documented")
            continue
        schema = _json_schema(response_spec)
        if schema is None:
            if record.response is not None:
                problems.append(f"{where}: the spec has no body but one was sent")
        else:
            problems += [f"{where} response: {p}" for p in validate(SPEC, schema, record.response)]
        seen.add((record.method, template, record.status))
    assert not problems, "\n".join(problems)
    return seen


async def test_client_requests_and_emulator_answers_match_the_spec(tmp_path: Path) -> None:
    with Emulator(keys={SITE_KEY: [1], "multi-org-key": [1, 2]}, rate_limiting=False) as mx:
        asset = mx.add_asset("Pump P-101")
        ledger = SqliteLedger(tmp_path / "ledger.sqlite")
        async with make_client(mx) as client:
            # Everything the sync logic sends, through the real code path.
            for event in ("activated", "escalated", "chattering", "cleared"):
                priority = "HIGH" if event == "escalated" else "MEDIUM"
                await apply_alert(
                    client,
                    ThreadedLedger(ledger),
                    alert(1, event, priority=priority),
                    asset_id=asset,
                )
            assert await find_existing_work_order(client, alert(1), asset_id=asset) is not None
            work_order_id = mx.work_orders[0]["id"]
            # The alarm lifecycle's calls (issue 13): a maintenance comment, a verdict each
            # way (a reopen sets the status back to OPEN).
            for event, extra in (
                ("activated", {"held": "maintenance", "notify": False, "comment": "held"}),
                ("verified", {"comment": "verified: p101-temp normal"}),
                ("reopened", {"comment": "p101-temp still high"}),
            ):
                message = {**alert(2, "cleared"), **extra}
                message["event"] = event
                message["event_id"] = f"{message['alert_id']}:{event}:schema"
                message["work_order_id"] = work_order_id
                await apply_alert(client, ThreadedLedger(ledger), message, asset_id=asset)  # type: ignore[arg-type]
            await client.set_status(work_order_id, "IN_PROGRESS")
            subscription = await client.create_subscription(
                "WORK_ORDER_STATUS_CHANGE", "http://127.0.0.1:9/hook", {"oneOfStatuses": ["DONE"]}
            )
            pages = [w async for w in client.list_work_orders(limit=1, statuses=["IN_PROGRESS"])]
            assert [w["id"] for w in pages] == [work_order_id]
            # The status webhook the emulator sends (the hub reads newWorkOrder's assignees).
            await client.set_status(work_order_id, "DONE")
            assert mx.wait_for(lambda: mx.webhook_deliveries, 10)
            hook = SPEC["x-webhooks"]["WORK_ORDER_STATUS_CHANGE"]["post"]["requestBody"]
            for delivery in mx.webhook_deliveries:
                assert "newWorkOrder" in delivery.payload
                assert validate(SPEC, _json_schema(hook) or {}, delivery.payload) == []
            # The documented error answers.
            with pytest.raises(NotFound):
                await client.get_work_order(999_999)
            with pytest.raises(BadRequest):
                await client.create_work_order({"title": "x", "priority": "URGENT"})
            with pytest.raises(BadRequest):
                await client.add_comment(work_order_id, "")
        async with make_client(mx, key="wrong-key") as client:
            with pytest.raises(CredentialsRejected):
                await client.create_work_order({"title": "x"})
        async with make_client(mx, key="multi-org-key") as client:
            # A 400 naming no field is the settings' fault, not this request's.
            with pytest.raises(Misconfigured) as missing_org:
                await client.create_work_order({"title": "x"})
            assert missing_org.value.body == {
                "errors": [{"error": "Missing x-organization-id header."}]
            }
        ledger.close()

        # Assets, meters, readings and subscriptions as the hub and demo use them.
        headers = {"Authorization": f"Bearer {SITE_KEY}"}
        async with httpx.AsyncClient(base_url=mx.url + "/", headers=headers) as raw:
            created = (await raw.post("assets", json={"name": "Fan F-2"})).json()
            await raw.get("assets", params={"limit": 1})
            await raw.get(f"assets/{created['id']}")
            meter = (
                await raw.post(
                    "meters",
                    json={
                        "name": "P-101 temp",
                        "unit": "Celsius",
                        "measurementType": "AUTOMATED_SENSOR",
                        "assetId": created["id"],
                    },
                )
            ).json()
            await raw.get("meters", params=[("assets", created["id"])])
            await raw.get(f"meters/{meter['id']}")
            await raw.post("meterreadings", json=[{"meterId": meter["id"], "value": 72.4}])
            await raw.get(f"workorders/{work_order_id}/comments")
            await raw.get(f"subscriptions/{subscription['id']}")
            await raw.get(f"subscriptions/{subscription['id']}/secret")
            await raw.delete(f"subscriptions/{subscription['id']}")
            await raw.get("workorders/12345678")
        seen = check_records(mx)

    expected = {
        ("POST", "/workorders", 200), ("GET", "/workorders", 200),
        ("GET", "/workorders/{id}", 200), ("PATCH", "/workorders/{id}", 200),
        ("PATCH", "/workorders/{id}/status", 200), ("POST", "/workorders/{id}/comments", 201),
        ("GET", "/workorders/{id}/comments", 200), ("POST", "/assets", 201),
        ("GET", "/assets", 200), ("GET", "/assets/{id}", 200), ("POST", "/meters", 201),
        ("GET", "/meters", 200), ("GET", "/meters/{id}", 200), ("POST", "/meterreadings", 201),
        ("POST", "/subscriptions", 201), ("GET", "/subscriptions/{id}", 200),
        ("GET", "/subscriptions/{id}/secret", 200), ("DELETE", "/subscriptions/{id}", 204),
        ("GET", "/workorders/{id}", 404), ("POST", "/workorders", 400),
        ("POST", "/workorders", 401), ("POST", "/workorders/{id}/comments", 400),
    }  # fmt: skip
    assert expected <= seen, sorted(expected - seen)


def test_the_validator_catches_a_wrong_body() -> None:
    """The check above can fail: a wrong body is reported."""
    operation = SPEC["paths"]["/workorders"]["post"]
    schema = _json_schema(operation["requestBody"])
    assert schema is not None
    assert validate(SPEC, schema, {"title": "x", "priority": "MEDIUM"}) == []
    assert validate(SPEC, schema, {"priority": "MEDIUM"})  # title is required
    assert validate(SPEC, schema, {"title": "x", "priority": "URGENT"})
    assert validate(SPEC, schema, {"title": "x", "assetId": "12"})


def test_meter_endpoints_match_the_spec() -> None:
    """Meters, readings (with their 400, 404 and 429), meter triggers and asset downtime,
    answered as the spec says (issue 14)."""
    with Emulator(keys={SITE_KEY: [1]}, rate_limit=1000) as mx:
        asset = mx.add_asset("Pump P-101")
        headers = {"Authorization": f"Bearer {SITE_KEY}"}
        with httpx.Client(base_url=mx.url + "/", headers=headers) as raw:
            # POST /assets/{id}/status is on MaintainX's API page, not in the spec's subset:
            # its answer is checked against the spec's asset status object, then the log
            # is cleared so that every other exchange is checked as an operation of the spec.
            status_schema = _json_schema(SPEC["paths"]["/assets/{id}"]["get"]["responses"]["200"])
            assert status_schema is not None
            status_schema = status_schema["properties"]["asset"]["properties"]["status"]
            started = "2026-01-01T00:00:00.000Z"
            for body in (
                {"status": "OFFLINE", "downtimeType": "UNPLANNED", "startedAt": started},
                {"status": "ONLINE", "startedAt": "2026-01-01T01:00:00.000Z"},
            ):
                answer = raw.post(f"assets/{asset}/status", json=body)
                assert answer.status_code == 201
                assert validate(SPEC, status_schema, answer.json()) == []
            mx.clear_requests()
            raw.get(f"assets/{asset}")  # now carries its status
            meter = raw.post(
                "meters",
                json={"name": "run hours", "unit": "Hours", "measurementType": "AUTOMATED_SENSOR"},
            ).json()["id"]
            raw.get("meters", params={"measurementType": "AUTOMATED_SENSOR"})
            recent = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            raw.post(
                "meterreadings",
                json=[
                    {"meterId": meter, "value": 1.5},
                    {"meterId": meter, "value": 2, "readingDate": recent},
                ],
            )
            raw.post("meterreadings", json=[{"meterId": meter, "value": "x"}])
            raw.post("meterreadings", json=[{"meterId": 999_999, "value": 1}])
            trigger = {
                "meterTrigger": {
                    "meterId": meter,
                    "name": "500 h",
                    "condition": "INCREMENTED_BY",
                    "amount": 500,
                },  # fmt: skip
                "workOrderTemplate": {"procedureTemplateId": 5, "data": {"assetId": asset}},
            }
            trigger_id = raw.post("metertriggers", json=trigger).json()["id"]
            raw.post("metertriggers", json={"meterTrigger": {"meterId": meter}})
            raw.get("metertriggers", params=[("meters", meter), ("limit", 10)])
            raw.get(f"metertriggers/{trigger_id}")
            raw.delete(f"metertriggers/{trigger_id}")
            raw.get(f"metertriggers/{trigger_id}")
            limits = {"limit": 1, "window_s": 60}
            httpx.put(mx.admin_url + "/limits/meterreadings", json=limits).raise_for_status()
            raw.post("meterreadings", json=[{"meterId": meter, "value": 3}])
            raw.post("meterreadings", json=[{"meterId": meter, "value": 4}])
        seen = check_records(mx)

    expected = {
        ("GET", "/assets/{id}", 200), ("POST", "/meters", 201), ("GET", "/meters", 200),
        ("POST", "/meterreadings", 201), ("POST", "/meterreadings", 400),
        ("POST", "/meterreadings", 404), ("POST", "/meterreadings", 429),
        ("POST", "/metertriggers", 201), ("POST", "/metertriggers", 400),
        ("GET", "/metertriggers", 200), ("GET", "/metertriggers/{id}", 200),
        ("DELETE", "/metertriggers/{id}", 204), ("GET", "/metertriggers/{id}", 404),
    }  # fmt: skip
    assert expected <= seen, sorted(expected - seen)
