"""The MaintainX side of the alarm lifecycle (issue 13), against the emulator over HTTP:
what each lifecycle message does to the work orders, once per event id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_agent.maintainx.ledger import SqliteLedger, ThreadedLedger
from edge_agent.maintainx.sync import apply_alert
from edge_agent.simulators.maintainx import Emulator
from tests.maintainx.conftest import alert, make_client


def lifecycle(n: int, event: str, work_order_id: int | None, **fields: Any) -> dict[str, Any]:
    """A lifecycle message of episode ``n`` (the alert schema's fields, @2's extras)."""
    message = {**alert(n, "cleared"), "event": event, **fields}
    message["event_id"] = f"{message['alert_id']}:{event}:{fields.pop('qualifier', '')}"
    if work_order_id is not None:
        message["work_order_id"] = work_order_id
    return message


async def test_each_lifecycle_message_does_its_one_thing_once(
    emulator: Emulator, asset_id: int, tmp_path: Path
) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    threaded = ThreadedLedger(ledger)
    async with make_client(emulator) as client:
        created = await apply_alert(client, threaded, alert(1), asset_id=asset_id)
        wo = created.work_order_id
        assert created.action == "created" and wo is not None
        emulator.change_status(wo, "IN_PROGRESS")

        # Another rule of the asset activates while its work order is in progress: held,
        # one comment on the maintenance work order, no work order of its own.
        held = {
            **alert(2),
            "notify": False,
            "held": "maintenance",
            "work_order_id": wo,
            "comment": "p101-pressure low while work order is in progress",
        }
        results = [await apply_alert(client, threaded, held, asset_id=asset_id) for _ in range(2)]
        assert [r.action for r in results] == ["commented", "duplicate"]
        # Shelved and out of service: nothing at MaintainX.
        for state in ("shelved", "out_of_service"):
            quiet = {**alert(3), "notify": False, "held": state}
            quiet["event_id"] += f":{state}"
            assert (await apply_alert(client, threaded, quiet, asset_id=asset_id)).action == (
                "suppressed"
            )
        # Audit events are recorded, no call.
        before = len(emulator.requests)
        for kind in (
            "shelved",
            "unshelved",
            "out_of_service",
            "returned_to_service",
            "acknowledged",
        ):
            message = lifecycle(1, kind, None, by="ana", reason="valve swap")
            assert (await apply_alert(client, threaded, message, asset_id=asset_id)).action == (
                "recorded"
            )
        assert len(emulator.requests) == before

        emulator.change_status(wo, "DONE")
        verified = lifecycle(1, "verified", wo, comment="verified: p101-temp normal for 30 min")
        assert (await apply_alert(client, threaded, verified, asset_id=asset_id)).action == (
            "commented"
        )
        reopened = lifecycle(1, "reopened", wo, comment="p101-temp back to 97.0 degC")
        first = await apply_alert(client, threaded, reopened, asset_id=asset_id)
        again = await apply_alert(client, threaded, reopened, asset_id=asset_id)
        assert (first.action, first.work_order_id, again.action) == ("reopened", wo, "duplicate")

    assert len(emulator.work_orders) == 1  # never a second work order
    assert emulator.work_orders[0]["status"] == "OPEN"
    comments = [c["content"] for c in emulator.comments(wo)]
    assert len(comments) == 3
    assert comments[0].startswith("p101-pressure low while work order is in progress")
    assert comments[1].startswith("verified: p101-temp normal for 30 min")
    assert comments[2].startswith("p101-temp back to 97.0 degC. Alert id: ")
    assert all("Alert id: " in c for c in comments)
    ledger.close()


async def test_a_verdict_without_a_work_order_calls_nothing(
    emulator: Emulator, asset_id: int, tmp_path: Path
) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    async with make_client(emulator) as client:
        message = lifecycle(5, "verified", None, comment="verified")
        result = await apply_alert(client, ThreadedLedger(ledger), message, asset_id=asset_id)
    assert result.action == "no_work_order"
    assert [r for r in emulator.requests if not r.path.startswith("/_emulator/")] == []
    ledger.close()


async def test_a_release_makes_the_held_episodes_work_order_once(
    emulator: Emulator, asset_id: int, tmp_path: Path
) -> None:
    """An episode held for maintenance (commented on the maintenance work order), still
    active when the maintenance ended: its release (``activated`` with ``released``, same
    alert id) makes its own work order, once, however often it is delivered."""
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    threaded = ThreadedLedger(ledger)
    async with make_client(emulator) as client:
        maintenance = await apply_alert(client, threaded, alert(1), asset_id=asset_id)
        assert maintenance.work_order_id is not None
        held = {
            **alert(2),
            "notify": False,
            "held": "maintenance",
            "work_order_id": maintenance.work_order_id,
            "comment": "p101-pressure low while work order is in progress",
        }
        assert (await apply_alert(client, threaded, held, asset_id=asset_id)).action == (
            "commented"
        )
        release = {**alert(2), "released": "maintenance"}
        release["event_id"] = f"{release['alert_id']}:activated:released"
        results = [
            await apply_alert(client, threaded, release, asset_id=asset_id) for _ in range(2)
        ]
        assert [r.action for r in results] == ["created", "duplicate"]
        assert results[0].work_order_id not in (None, maintenance.work_order_id)
        assert results[1].work_order_id == results[0].work_order_id
        # The held activation delivered again (a redelivery after the release) adds nothing.
        assert (await apply_alert(client, threaded, held, asset_id=asset_id)).action == (
            "duplicate"
        )
    assert len(emulator.work_orders) == 2
    assert len(emulator.comments(maintenance.work_order_id)) == 1
    ledger.close()
