"""The alarm lifecycle in direct mode (issue 13; no hub, no webhooks): a real agent whose
MaintainX forwarder records each rule's work order and polls the open ones' statuses from
the emulator over HTTP, handing each change to the rule engine. The same story as the hub's
end-to-end test: held and commented during the repair, verified, then a repair that does not
hold reopened without a new work order; then the other alarm, held while the reopened work
order is in progress again and still active when it goes back to OPEN, released: its own
work order, once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config.models import SiteConfig
from edge_agent.forwarders.maintainx import status_poller
from edge_agent.forwarders.maintainx.forwarder import MaintainXStatus
from edge_agent.service.pipeline import Agent
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import free_port
from tests.maintainx.conftest import SITE_KEY, write_key
from tests.service.rule_agent import feed, good, running_agent

WAIT_S = 30.0


def _site(state_dir: Path, mx: Emulator, key_ref: str, asset_mx: int) -> SiteConfig:
    rule = {
        "asset": "P-101",
        "high": {"limit": 50},
        "priority": "MEDIUM",
        "work_order": {"title": "{asset.name}: {value:.1f} {unit}"},
    }
    return SiteConfig.model_validate(
        {
            "version": 1,
            "site": {"id": "direct-plant", "name": "Direct plant"},
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
                "mode": "maintainx",
                "maintainx": {
                    "base_url": mx.url,
                    "api_key": key_ref,
                    "timeout": "5s",
                    "rate_limit": 6000,
                    "backoff": {"initial": "100ms", "max": "500ms"},
                },
            },
            "storage": {"path": str(state_dir)},
            "health": {"listen": f"127.0.0.1:{free_port()}"},
        }
    )


async def _until(what: str, done: Callable[[], Any], agent: Agent, *feeding: Any) -> Any:
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


async def test_direct_mode_polls_statuses_into_the_lifecycle(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(status_poller, "DEFAULT_INTERVAL_S", 0.2)
    asset_mx = emulator.add_asset("Pump P-101")
    key_ref = write_key(tmp_path, SITE_KEY)

    def orders() -> list[dict[str, Any]]:
        return [wo for wo in emulator.work_orders if wo.get("assetId") == asset_mx]

    def texts(work_order_id: int) -> list[str]:
        return [str(c["content"]) for c in emulator.comments(work_order_id)]

    state = tmp_path / "state"
    async with running_agent(_site(state, emulator, key_ref, asset_mx), state) as agent:
        tracker = agent.work_orders
        assert tracker is not None
        await feed(agent, [good("temp", 60.0), good("vib", 1.0)])
        first = (await _until("the first work order", orders, agent))[0]["id"]
        await _until("the tracker", lambda: tracker.open_work_order_for("pump-hot"), agent)

        await asyncio.to_thread(emulator.change_status, first, "IN_PROGRESS")
        await _until("the poll", lambda: _maintenance(agent, "pump-shakes") == first, agent)
        # The other alarm of the asset under repair: held, one comment on that work order.
        await feed(agent, [good("vib", 80.0)])
        await _until("the held comment", lambda: texts(first), agent)

        await feed(agent, [good("temp", 20.0), good("vib", 1.0)])
        await asyncio.to_thread(emulator.change_status, first, "DONE")
        await _until(
            "verified",
            lambda: any(t.startswith("verified") for t in texts(first)),
            agent,
            ("temp", 20.0),
        )

        await feed(agent, [good("temp", 70.0)])
        second = (await _until("the second work order", lambda: orders()[1:], agent))[0]["id"]
        await _until(
            "the tracker", lambda: tracker.open_work_order_for("pump-hot") == second, agent
        )
        await asyncio.to_thread(emulator.change_status, second, "DONE")
        await _until(
            "the reopen",
            lambda: [wo["status"] for wo in orders()] == ["DONE", "OPEN"] and texts(second),
            agent,
            ("temp", 70.0),
        )
        await _until(
            "the tracker to know it open again",
            lambda: tracker.open_work_order_for("pump-hot") == second,
            agent,
        )
        await asyncio.sleep(1.0)

        await asyncio.to_thread(emulator.change_status, second, "IN_PROGRESS")
        await _until("the poll again", lambda: _maintenance(agent, "pump-shakes") == second, agent)
        await feed(agent, [good("vib", 80.0)])
        await _until("the second held comment", lambda: texts(second)[1:], agent)
        await asyncio.to_thread(emulator.change_status, second, "OPEN")
        third = (await _until("the released work order", lambda: orders()[2:], agent))[0]["id"]
        await asyncio.sleep(1.0)  # a duplicate would come within it
        forwarder = agent.forwarder
        assert forwarder is not None and isinstance(forwarder.status, MaintainXStatus)
        polls = forwarder.status.status_polls
        assert polls is not None and polls.polls >= 2 and polls.changes >= 2

    assert [wo["id"] for wo in orders()] == [first, second, third]
    first_texts = texts(first)
    assert first_texts[0].startswith("pump-shakes on Pump P-101 went into alarm"), first_texts
    assert [t.split(" ", 1)[0] for t in first_texts[1:]] == ["Returned", "verified:"]
    assert len(texts(second)) == 2 and texts(second)[0].startswith("reopened: ")
    assert texts(second)[1].startswith("pump-shakes on Pump P-101 went into alarm")
    assert texts(third) == []
