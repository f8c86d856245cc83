"""apply_alert: one alarm event → the right MaintainX calls, idempotently."""

from __future__ import annotations

from pathlib import Path

from edge_agent.common.local_time import local_text
from edge_agent.maintainx.ledger import SqliteLedger, ThreadedLedger
from edge_agent.maintainx.sync import apply_alert
from edge_agent.simulators.maintainx import Emulator
from tests.maintainx.conftest import alert, make_client


async def test_episode_makes_one_work_order_and_updates_it(
    emulator: Emulator, asset_id: int, tmp_path: Path
) -> None:
    ledger = SqliteLedger(tmp_path / "l.sqlite")
    async with make_client(emulator) as client:
        created = await apply_alert(
            client, ThreadedLedger(ledger), alert(1), asset_id=asset_id, location_id=3
        )
        again = await apply_alert(client, ThreadedLedger(ledger), alert(1), asset_id=asset_id)
        escalated = await apply_alert(
            client,
            ThreadedLedger(ledger),
            alert(1, "escalated", priority="HIGH", qualifier="HIGH"),
            asset_id=asset_id,
        )
        cleared = await apply_alert(
            client, ThreadedLedger(ledger), alert(1, "cleared"), asset_id=asset_id
        )
        other = await apply_alert(client, ThreadedLedger(ledger), alert(2), asset_id=asset_id)
    assert created.action == "created"
    assert again.action == "duplicate" and again.work_order_id == created.work_order_id
    assert escalated.action == "escalated" and escalated.work_order_id == created.work_order_id
    assert cleared.action == "commented" and cleared.work_order_id == created.work_order_id
    assert other.action == "created" and other.work_order_id != created.work_order_id

    work_orders = {w["id"]: w for w in emulator.work_orders}
    first = work_orders[created.work_order_id]
    message = alert(1)
    assert first["title"] == "P-101 bearing temperature high"
    assert message["alert_id"] in first["description"]
    assert first["externalData"] == {"alert_id": message["alert_id"], "site": "plant-a"}
    assert first["assetId"] == asset_id and first["locationId"] == 3
    assert first["categories"] == ["Monitoring"] and first["teamIds"] == [7]
    assert first["dueDate"] == "2026-06-01T12:00:00Z"
    assert first["priority"] == "HIGH"  # raised by the escalation
    assert work_orders[other.work_order_id]["priority"] == "MEDIUM"  # the other one untouched
    comments = [c["content"] for c in emulator.comments(created.work_order_id)]
    assert len(comments) == 2
    assert comments[0].startswith("Escalated to HIGH")
    cleared_at = local_text(alert(1, "cleared")["time_ns"], "UTC")
    assert comments[1].startswith(f"Returned to normal at {cleared_at}: p101-temp = 93.50 degC")
    assert emulator.comments(other.work_order_id) == []
    creates = [r for r in emulator.requests if r.method == "POST" and r.path == "/v1/workorders"]
    assert len(creates) == 2


async def test_escalation_never_lowers_a_priority(emulator: Emulator, tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.sqlite")
    async with make_client(emulator) as client:
        created = await apply_alert(
            client, ThreadedLedger(ledger), alert(1, priority="HIGH"), asset_id=None
        )
        await apply_alert(
            client,
            ThreadedLedger(ledger),
            alert(1, "escalated", priority="MEDIUM", qualifier="M"),
            asset_id=None,
        )
    assert emulator.work_orders[0]["priority"] == "HIGH"
    assert not [r for r in emulator.requests if r.method == "PATCH"]
    assert len(emulator.comments(created.work_order_id or 0)) == 1


async def test_notify_false_and_events_without_a_work_order(
    emulator: Emulator, tmp_path: Path
) -> None:
    ledger = SqliteLedger(tmp_path / "l.sqlite")
    async with make_client(emulator) as client:
        held = await apply_alert(
            client, ThreadedLedger(ledger), alert(1, notify=False), asset_id=None
        )
        chattering = await apply_alert(
            client, ThreadedLedger(ledger), alert(1, "chattering"), asset_id=None
        )
        cleared = await apply_alert(
            client, ThreadedLedger(ledger), alert(1, "cleared"), asset_id=None
        )
        # A later escalation that does notify opens the work order at its priority.
        escalated = await apply_alert(
            client,
            ThreadedLedger(ledger),
            alert(1, "escalated", priority="HIGH", qualifier="H"),
            asset_id=None,
        )
    assert held.action == "suppressed"
    assert chattering.action == "no_work_order" and cleared.action == "no_work_order"
    assert escalated.action == "created"
    assert [w["priority"] for w in emulator.work_orders] == ["HIGH"]
    assert ledger.result_of(alert(1)["event_id"]) == "suppressed"


async def test_unknown_outcome_is_looked_up_not_repeated(
    emulator: Emulator, asset_id: int, tmp_path: Path
) -> None:
    ledger = SqliteLedger(tmp_path / "l.sqlite")
    async with make_client(emulator) as client:
        # Decoys with the same title on the same asset, made by people or other episodes.
        for n in range(3):
            await client.create_work_order(
                {
                    "title": "P-101 bearing temperature high",
                    "assetId": asset_id,
                    "externalData": {"alert_id": f"other-{n}"},
                }
            )
        # An earlier attempt that reached MaintainX, but whose answer was lost.
        ledger.begin_create(alert(1)["alert_id"])
        lost = await client.create_work_order(
            {
                "title": "P-101 bearing temperature high",
                "assetId": asset_id,
                "externalData": {"alert_id": alert(1)["alert_id"]},
            }
        )
        result = await apply_alert(client, ThreadedLedger(ledger), alert(1), asset_id=asset_id)
        # An earlier attempt that never arrived: looked for, not found, created.
        ledger.begin_create(alert(2)["alert_id"])
        second = await apply_alert(client, ThreadedLedger(ledger), alert(2), asset_id=asset_id)
    assert result.action == "found" and result.work_order_id == lost
    assert ledger.work_order_for(alert(1)["alert_id"]) == lost
    assert second.action == "created"
    assert len(emulator.work_orders) == 5
    lookups = [r for r in emulator.requests if r.method == "GET" and r.path == "/v1/workorders"]
    assert lookups and lookups[0].query["assets"] == [str(asset_id)]
    assert lookups[0].query["title"] == ["P-101 bearing temperature high"]


class NeverAbandoningLedger(ThreadedLedger):
    """A ledger that ignores ``abandon_create`` (as the protocol allows, and the hub's does)."""

    async def abandon_create(self, alert_id: str) -> None:
        return None


async def test_a_500_is_retried_without_a_lookup_and_conservatively_without_abandon(
    emulator: Emulator, asset_id: int, tmp_path: Path
) -> None:
    import pytest

    from edge_agent.maintainx.errors import TransientError

    for name, ledger in (
        ("abandonable", ThreadedLedger(SqliteLedger(tmp_path / "a.sqlite"))),
        ("never-abandons", NeverAbandoningLedger(SqliteLedger(tmp_path / "b.sqlite"))),
    ):
        emulator.clear_requests()
        message = alert(1 if name == "abandonable" else 2)
        async with make_client(emulator) as client:
            emulator.faults.error_rate = 1.0
            with pytest.raises(TransientError):
                await apply_alert(client, ledger, message, asset_id=asset_id)
            emulator.faults.reset()
            result = await apply_alert(client, ledger, message, asset_id=asset_id)
        assert result.action == "created"
        lookups = [r for r in emulator.requests if r.method == "GET"]
        assert (name, bool(lookups)) == (name, name == "never-abandons")
    assert len(emulator.work_orders) == 2


async def test_comments_read_as_the_work_order_does_seconds_and_rounded_values(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Issue 21 §2: default texts print times to the second and round values, not
    ``2026-12-04T14:54:21.432641674Z: p101_vibration = 2.4099999999999997``. The comments
    (escalated, cleared, chattering) are written here, from the message: without sensor
    decimals or a site time zone in it, UTC to the second and numbers to 2 places."""
    ledger = SqliteLedger(tmp_path / "l.sqlite")
    events = [
        alert(1),
        {**alert(1, "escalated", priority="HIGH", qualifier="H"), "value": 300.1021901976017},
        {**alert(1, "chattering"), "value": 61.000000001},
        {**alert(1, "cleared"), "value": 2.4099999999999997, "peak": 309.87654},
    ]
    async with make_client(emulator) as client:
        for message in events:
            result = await apply_alert(client, ThreadedLedger(ledger), message, asset_id=None)
    comments = [c["content"] for c in emulator.comments(result.work_order_id)]
    when = [local_text(message["time_ns"], "UTC") for message in events[1:]]
    assert comments == [
        f"Escalated to HIGH at {when[0]}: p101-temp = 300.10 degC (limit 90). "
        f"Alert id: {events[0]['alert_id']}",
        "Alarm is chattering (repeatedly activating and clearing) as of "
        f"{when[1]}: p101-temp = 61.00 degC. Alert id: {events[0]['alert_id']}",
        f"Returned to normal at {when[2]}: p101-temp = 2.41 degC, peak 309.88. "
        f"Alert id: {events[0]['alert_id']}",
    ]


async def test_comments_use_the_sensor_decimals_and_site_time_zone_the_message_carries(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Issue 21 §2, the rest: the agent puts the sensor's ``decimals`` and ``site.timezone``
    in the message, so the comments written from it (here, or at the hub) read as the work
    order's own text does. A zone this host does not know prints UTC, never nanoseconds."""
    ledger = SqliteLedger(tmp_path / "l.sqlite")
    local = {"decimals": 1, "timezone": "Europe/Berlin"}
    events = [
        {**alert(1), **local},
        {**alert(1, "escalated", priority="HIGH", qualifier="H"), **local, "value": 300.1021},
        {**alert(1, "cleared"), **local, "value": 2.46, "peak": 309.87654},
        {**alert(1, "chattering"), "timezone": "Mars/Olympus_Mons", "value": 61.0},
    ]
    async with make_client(emulator) as client:
        for message in events:
            result = await apply_alert(client, ThreadedLedger(ledger), message, asset_id=None)
    comments = [c["content"] for c in emulator.comments(result.work_order_id)]
    berlin = [local_text(m["time_ns"], "Europe/Berlin") for m in events[1:3]]
    assert berlin[0].endswith((" CET", " CEST"))
    alert_id = events[0]["alert_id"]
    assert comments == [
        f"Escalated to HIGH at {berlin[0]}: p101-temp = 300.1 degC (limit 90.0). "
        f"Alert id: {alert_id}",
        f"Returned to normal at {berlin[1]}: p101-temp = 2.5 degC, peak 309.9. "
        f"Alert id: {alert_id}",
        "Alarm is chattering (repeatedly activating and clearing) as of "
        f"{local_text(events[3]['time_ns'], 'UTC')}: p101-temp = 61 degC. Alert id: {alert_id}",
    ]
