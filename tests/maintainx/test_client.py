"""The client against the emulator over HTTP: calls, pagination, error translation."""

from __future__ import annotations

import logging

import pytest

from edge_agent.maintainx.errors import (
    BadRequest,
    CredentialsRejected,
    NotFound,
    OutcomeUnknown,
    TransientError,
)
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import free_port
from tests.maintainx.conftest import SITE_KEY, make_client, wait_until


async def test_work_order_round_trip(emulator: Emulator, asset_id: int) -> None:
    async with make_client(emulator) as client:
        work_order_id = await client.create_work_order(
            {
                "title": "Check P-101",
                "priority": "LOW",
                "assetId": asset_id,
                "externalData": {"alert_id": "a-1"},
            }
        )
        await client.update_priority(work_order_id, "HIGH")
        comment_id = await client.add_comment(work_order_id, "hello")
        await client.set_status(work_order_id, "ON_HOLD")
        fetched = await client.get_work_order(work_order_id)
    assert fetched["priority"] == "HIGH"
    assert fetched["status"] == "ON_HOLD"
    assert fetched["assetId"] == asset_id
    assert fetched["externalData"] == {"alert_id": "a-1"}
    assert [c["id"] for c in emulator.comments(work_order_id)] == [comment_id]
    patch = [
        r for r in emulator.requests if r.method == "PATCH" and r.path.endswith(f"/{work_order_id}")
    ]
    assert [r.body for r in patch] == [{"priority": "HIGH"}]


async def test_list_follows_cursors_and_filters(emulator: Emulator, asset_id: int) -> None:
    other = emulator.add_asset("Fan F-2")
    async with make_client(emulator) as client:
        for n in range(7):
            await client.create_work_order({"title": f"WO {n}", "assetId": asset_id})
        await client.create_work_order({"title": "WO other", "assetId": other})
        listed = [w async for w in client.list_work_orders(limit=2, assets=[asset_id])]
        newest = [w async for w in client.list_work_orders(limit=3, sort="-createdAt", max_pages=1)]
    assert [w["title"] for w in listed] == [f"WO {n}" for n in range(7)]
    assert len(newest) == 3 and newest[0]["title"] == "WO other"
    cursors = [r.query.get("cursor") for r in emulator.requests if r.method == "GET"]
    assert sum(1 for c in cursors if c) == 3  # 7 items, 2 a page: 4 pages, 3 with a cursor


async def test_errors_are_translated(emulator: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with make_client(emulator) as client:
        with pytest.raises(NotFound):
            await client.get_work_order(424242)
        with pytest.raises(BadRequest) as bad:
            await client.create_work_order({"title": "x", "assetId": 99})
        assert bad.value.status == 400
        assert bad.value.body == {
            "errors": [{"error": "Asset not found", "fieldPath": "assetId", "fieldValue": 99}]
        }
        emulator.faults.error_rate = 1.0
        with pytest.raises(TransientError) as server_error:
            await client.get_work_order(1)
        assert server_error.value.status == 500
        emulator.faults.reset()
    async with make_client(emulator, key="not-a-key") as client:
        with pytest.raises(CredentialsRejected) as rejected:
            await client.get_work_order(1)
        assert rejected.value.status == 401
    async with make_client(emulator, organization_id=2) as client:
        with pytest.raises(CredentialsRejected) as forbidden:
            await client.get_work_order(1)
        assert forbidden.value.status == 403
    # The key is never in a log line.
    assert SITE_KEY not in caplog.text
    assert "not-a-key" not in caplog.text


async def test_refused_connection_is_transient_and_silence_is_unknown(emulator: Emulator) -> None:
    closed = Emulator(port=free_port())  # a port nobody listens on (never started)
    async with make_client(closed, timeout_s=0.5) as client:
        with pytest.raises(TransientError):
            await client.create_work_order({"title": "x"})
    emulator.faults.timeout_after_store_rate = 1.0
    emulator.faults.stall_s = 2.0
    async with make_client(emulator, timeout_s=0.2) as client:
        with pytest.raises(OutcomeUnknown):
            await client.create_work_order({"title": "stored but unanswered"})
    # It was stored (on a loaded machine maybe only after the client gave up): exactly the
    # case the ledger's lookup exists for.
    await wait_until(lambda: len(emulator.work_orders) >= 1)
    assert [w["title"] for w in emulator.work_orders] == ["stored but unanswered"]
    emulator.faults.reset()
    emulator.faults.drop_rate = 1.0
    async with make_client(emulator, timeout_s=1.0) as client:
        with pytest.raises(OutcomeUnknown):
            await client.create_work_order({"title": "dropped"})
    assert len(emulator.work_orders) == 1
