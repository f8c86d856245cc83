"""The alarm lifecycle end to end (issue 13): a real agent (its rules fed readings as a
source does), mosquitto, the hub with its webhooks, and the MaintainX emulator over HTTP.

A pump has two rules. Its work order goes IN_PROGRESS: the pump's other alarm is held and
commented on that work order (no work order of its own). It goes DONE and the sensor stays
normal: "verified". A second episode gets its own work order, which goes DONE while the
sensor stays high: it is reopened (OPEN again, with a comment), and no new work order is
made. Then the reopened work order is worked on again: the pump's other alarm, held and
commented meanwhile, is still active when the work order leaves IN_PROGRESS (back to
OPEN): it is released and gets its own work order, once. The work orders and comments are
counted at the emulator; the hub's KPIs say one first-time fix of two repairs judged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.config.models import SiteConfig
from edge_agent.hub.config import HubConfig
from edge_agent.hub.subscriptions import register_webhooks
from edge_agent.service.pipeline import Agent
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker, free_port
from tests.hub.conftest import hub_dict, start_hub
from tests.service.rule_agent import feed, good, running_agent

SITE = "site-a"
WAIT_S = 30.0


def _site(state_dir: Path, broker: Broker, asset_mx: int) -> SiteConfig:
    rule = {
        "asset": "P-101",
        "high": {"limit": 50},
        "priority": "MEDIUM",
        "work_order": {"title": "{asset.name}: {value:.1f} {unit}"},
    }
    return SiteConfig.model_validate(
        {
            "version": 1,
            "site": {"id": SITE, "name": "Lifecycle plant"},
            # The source reaches nothing and polls hourly: the test's readings are the only
            # ones the rules see.
            "defaults": {"poll": "1h", "stale_after": "10m"},
            "connections": {
                "plc1": {"protocol": "modbus-tcp", "host": "127.0.0.1", "port": free_port()}
            },
            "assets": {"P-101": {"maintainx_id": asset_mx, "name": "Pump P-101"}},
            "sensors": {
                "temp": {
                    "connection": "plc1",
                    "register": {"table": "holding", "address": 0},
                    "unit": "degC",
                },
                "vib": {
                    "connection": "plc1",
                    "register": {"table": "holding", "address": 1},
                    "unit": "mm/s",
                },
            },
            "rules": [
                {**rule, "id": "pump-hot", "sensor": "temp", "verify_for": "2s"},
                {**rule, "id": "pump-shakes", "sensor": "vib"},
            ],
            "forwarding": {
                "mode": "mqtt",
                "mqtt": {
                    "host": broker.host,
                    "port": broker.port,
                    "confirm": "hub",
                    "result_timeout": "2s",
                    "result_timeout_max": "4s",
                    "backoff": {"initial": "100ms", "max": "1s"},
                },
            },
            "storage": {"path": str(state_dir)},
            "health": {"listen": f"127.0.0.1:{free_port()}"},
        }
    )


async def _until(what: str, done: Callable[[], Any], agent: Agent, *feeding: Any) -> Any:
    """Wait (bounded) until ``done()`` is truthy, feeding ``feeding`` readings meanwhile (a
    source polling a sensor that stays where it is); fails if the agent's rules stopped."""
    deadline = time.monotonic() + WAIT_S
    while True:
        found = done()
        if found:
            return found
        assert agent._rules_task is not None and not agent._rules_task.done(), "rules ended"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        if feeding:
            await feed(agent, [good(sensor, value) for sensor, value in feeding])
        await asyncio.sleep(0.1)


def _maintenance(agent: Agent, rule: str) -> Any:
    assert agent.engine is not None
    rows = agent.engine.alarms_view(time.monotonic_ns())
    return next(row for row in rows if row["rule"] == rule)["maintenance"]


async def test_held_verified_and_reopened_through_the_hub(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, running_hubs: list[Any]
) -> None:
    data = hub_dict(mosquitto, emulator.url, tmp_path / "hub", webhooks=True)
    port = int(data["webhooks"]["listen"].rsplit(":", 1)[1])
    data["webhooks"]["public_url"] = f"http://127.0.0.1:{port}/maintainx/webhooks"
    await register_webhooks(HubConfig.model_validate(data), tmp_path)
    hub = await start_hub(data, tmp_path)
    running_hubs.append(hub)
    asset_mx = await asyncio.to_thread(emulator.add_asset, "Pump P-101", 101)

    def orders() -> list[dict[str, Any]]:
        return [wo for wo in emulator.work_orders if wo.get("assetId") == asset_mx]

    def texts(work_order_id: int) -> list[str]:
        return [str(c["content"]) for c in emulator.comments(work_order_id)]

    def order(work_order_id: int) -> dict[str, Any]:
        return next(wo for wo in orders() if wo["id"] == work_order_id)

    state = tmp_path / "state"
    async with running_agent(_site(state, mosquitto, asset_mx), state) as agent:
        tracker = agent.work_orders
        assert tracker is not None
        # 1. The pump runs hot: one work order, known to the agent from the hub's answer.
        await feed(agent, [good("temp", 60.0), good("vib", 1.0)])
        first = (await _until("the first work order", orders, agent))[0]["id"]
        await _until("the agent to know it", lambda: tracker.open_work_order_for("pump-hot"), agent)

        # 2. A technician starts on it: the pump's asset is under maintenance.
        await asyncio.to_thread(emulator.change_status, first, "IN_PROGRESS")
        await _until("maintenance", lambda: _maintenance(agent, "pump-shakes") == first, agent)
        # The pump's other alarm, during the repair: held, one comment on that work order.
        await feed(agent, [good("vib", 80.0)])
        await _until("the held comment", lambda: texts(first), agent)

        # 3. Back to normal, the work order DONE: after verify_for, "verified".
        await feed(agent, [good("temp", 20.0), good("vib", 1.0)])
        await _until(
            "the cleared comment",
            lambda: any("Returned to normal" in t for t in texts(first)),
            agent,
        )
        await asyncio.to_thread(emulator.change_status, first, "DONE")
        await _until(
            "verified",
            lambda: any(t.startswith("verified") for t in texts(first)),
            agent,
            ("temp", 20.0),
        )

        # 4. A second episode: its own work order (the first is done), DONE while the
        # sensor stays high: reopened, no new one.
        await feed(agent, [good("temp", 70.0)])
        second = (await _until("the second work order", lambda: orders()[1:], agent))[0]["id"]
        await _until(
            "the agent to know it",
            lambda: tracker.open_work_order_for("pump-hot") == second,
            agent,
        )
        await asyncio.to_thread(emulator.change_status, second, "DONE")
        await _until(
            "the reopen",
            lambda: order(second)["status"] == "OPEN" and texts(second),
            agent,
            ("temp", 70.0),
        )
        await _until(
            "the agent to hear it OPEN",
            lambda: tracker.open_work_order_for("pump-hot") == second,
            agent,
            ("temp", 70.0),
        )
        await asyncio.sleep(1.0)  # anything more would be a duplicate: give it the time

        # 5. The reopened work order in progress again: the other alarm is held and
        # commented; still active when the work order goes back to OPEN (maintenance
        # over), it is released: its own work order, once.
        await asyncio.to_thread(emulator.change_status, second, "IN_PROGRESS")
        await _until(
            "maintenance again", lambda: _maintenance(agent, "pump-shakes") == second, agent
        )
        await feed(agent, [good("vib", 80.0)])
        await _until("the second held comment", lambda: texts(second)[1:], agent)
        await asyncio.to_thread(emulator.change_status, second, "OPEN")
        third = (await _until("the released work order", lambda: orders()[2:], agent))[0]["id"]
        await asyncio.sleep(1.0)  # a duplicate would come within it

    # Counted at the emulator: two work orders (none for the held alarm, none for the
    # reopen) and the released one, and each comment once.
    assert [wo["id"] for wo in orders()] == [first, second, third]
    assert order(third)["title"].startswith("Pump P-101: 80.0"), order(third)
    first_texts = texts(first)
    assert len(first_texts) == 3, first_texts
    assert first_texts[0].startswith("pump-shakes on Pump P-101 went into alarm"), first_texts
    assert first_texts[1].startswith("Returned to normal")
    assert first_texts[2].startswith("verified: ")
    second_texts = texts(second)
    assert len(second_texts) == 2 and second_texts[0].startswith("reopened: "), second_texts
    assert second_texts[1].startswith("pump-shakes on Pump P-101 went into alarm"), second_texts
    assert texts(third) == []
    assert order(first)["status"] == "DONE" and order(second)["status"] == "OPEN"

    # The hub kept the verdicts: one first-time fix of two repairs judged; time to normal.
    await hub.refresh()
    row = next(r for r in hub.kpi_rows if (r.site, r.asset) == (SITE, "P-101"))
    assert (row.repairs_judged, row.first_time_fixes) == (2, 1)
    assert row.first_time_fix_rate == 0.5
    assert row.time_to_normal_s is not None and row.time_to_normal_s > 0
