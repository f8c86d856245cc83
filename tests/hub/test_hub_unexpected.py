"""One more try before "poison" (hub/consumer.py): the first unexpected exception of a live
alert (a library's surprise, seen once as an anyio AttributeError out of httpx) parks it for
the retry interval instead of rejecting it; a parked alert that raises again is poison as
before. With the real hub, broker and MaintainX emulator."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

import edge_agent.hub.consumer as consumer_module
from edge_agent.hub.app import Hub
from edge_agent.maintainx.client import MaintainXClient
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker
from tests.hub.conftest import PG_DSN, Site, async_wait_until, hub_dict, make_alert, start_hub


def _ours(mx: Emulator, alert_id: str) -> list[dict[str, Any]]:
    return [
        wo for wo in mx.work_orders if (wo.get("externalData") or {}).get("alert_id") == alert_id
    ]


def _statuses(site: Site, event_id: str) -> list[str]:
    return [r["status"] for r in site.results() if r["event_id"] == event_id]


async def _hub(
    mosquitto: Broker,
    emulator: Emulator,
    tmp_path: Path,
    running: list[Hub],
    retry: str,
    dedup: dict[str, Any] | None = None,
) -> Hub:
    data = hub_dict(mosquitto, emulator.url, tmp_path / "s", retry_interval=retry, dedup=dedup)
    hub = await start_hub(data, tmp_path)
    running.append(hub)
    return hub


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_surprise_once_after_the_create_landed_is_one_work_order(
    backend: str,
    mosquitto: Broker,
    emulator: Emulator,
    tmp_path: Path,
    running_hubs: list[Hub],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """The create reached MaintainX, then the client raised (its answer lost to a library's
    bug): parked with ``unexpected_error``, not rejected, and not answered yet (the agent
    awaits the final answer); the one more try finds the work order instead of creating
    another. Exactly one work order, answered ``ok`` once."""
    real_create = MaintainXClient.create_work_order
    surprised: list[str] = []

    async def create_then_raise(self: MaintainXClient, body: Any) -> int:
        work_order_id = await real_create(self, body)
        if not surprised:
            surprised.append(body["title"])
            raise AttributeError("'NoneType' object has no attribute 'send' (injected)")
        return work_order_id

    monkeypatch.setattr(MaintainXClient, "create_work_order", create_then_raise)
    dedup: dict[str, Any] = {"backend": "sqlite"}
    if backend == "postgres":
        schema = request.getfixturevalue("pg_schema")
        monkeypatch.setenv("HUB_TEST_PG_DSN", PG_DSN)
        dedup = {
            "backend": "postgres",
            "dsn": "${HUB_TEST_PG_DSN}",
            "table_prefix": f"{schema}.hub_",
        }
    hub = await _hub(mosquitto, emulator, tmp_path, running_hubs, "200ms", dedup)
    site = Site(mosquitto)
    site.subscribe("edge/v1/site-a/results")
    try:
        alarm = make_alert("site-a", random.randrange(1 << 40))
        site.publish("edge/v1/site-a/alerts", alarm)
        await async_wait_until(
            lambda: "ok" in _statuses(site, alarm["event_id"]), 20, "the alarm applied"
        )
        await asyncio.sleep(0.5)  # a second create or answer would show now
        assert _statuses(site, alarm["event_id"]) == ["ok"]
        [done] = site.results()
        assert done["action"] == "found"  # the lost create's work order, not a new one
        assert len(_ours(emulator, alarm["alert_id"])) == 1
        assert hub.consumer is not None
        assert (hub.consumer.stats.unexpected, hub.consumer.stats.poison) == (1, 0)
        assert hub.sites["site-a"].counters.unexpected_errors == 1
        assert hub.store is not None and hub.store.pending_counts() == {}
    finally:
        site.close()


async def test_a_surprise_every_time_is_poison_after_the_second_try(
    mosquitto: Broker,
    emulator: Emulator,
    tmp_path: Path,
    running_hubs: list[Hub],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Raised on the live try and again on the parked one: rejected ``poison`` after the
    second try, answered once (``rejected``, which the agent still awaits: its dead letters
    keep the alarm), never a work order; a later resend is answered from the record without
    running the failing code a third time."""
    calls: list[str] = []

    async def apply_alert(client: Any, ledger: Any, message: Any, **kwargs: Any) -> Any:
        calls.append(message["event_id"])
        raise RuntimeError("injected bug")

    monkeypatch.setattr(consumer_module, "apply_alert", apply_alert)
    hub = await _hub(mosquitto, emulator, tmp_path, running_hubs, "200ms")
    site = Site(mosquitto)
    site.subscribe("edge/v1/site-a/results")
    try:
        alarm = make_alert("site-a", random.randrange(1 << 40))
        site.publish("edge/v1/site-a/alerts", alarm)
        await async_wait_until(
            lambda: "rejected" in _statuses(site, alarm["event_id"]), 20, "the rejection"
        )
        await asyncio.sleep(1.0)  # several retry intervals: no third try, no second answer
        assert calls == [alarm["event_id"]] * 2
        assert _statuses(site, alarm["event_id"]) == ["rejected"]
        rejected = site.results()[-1]
        assert rejected["reason"] == "poison" and "RuntimeError" in rejected["detail"]
        assert hub.store is not None and hub.store.pending_counts() == {}

        site.publish("edge/v1/site-a/alerts", alarm)  # the agent resends it
        await async_wait_until(
            lambda: len(_statuses(site, alarm["event_id"])) == 2, 10, "the resend's answer"
        )
        assert _statuses(site, alarm["event_id"])[-1] == "rejected"
        assert calls == [alarm["event_id"]] * 2  # answered from the record
        assert not _ours(emulator, alarm["alert_id"])
        assert hub.consumer is not None
        assert (hub.consumer.stats.unexpected, hub.consumer.stats.poison) == (1, 1)
    finally:
        site.close()


async def test_a_resend_while_parked_is_answered_parked_and_applied_once(
    mosquitto: Broker,
    emulator: Emulator,
    tmp_path: Path,
    running_hubs: list[Hub],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same message again while its one more try is held (the agent's resend): answered
    ``parked`` from the parked record (the handling does not run, no second unexpected error
    is counted, the park keeps its reason), then applied once: one work order."""
    calls: list[str] = []
    real_apply = consumer_module.apply_alert

    async def apply_alert(client: Any, ledger: Any, message: Any, **kwargs: Any) -> Any:
        calls.append(message["event_id"])
        if len(calls) == 1:
            raise RuntimeError("injected surprise")
        return await real_apply(client, ledger, message, **kwargs)

    monkeypatch.setattr(consumer_module, "apply_alert", apply_alert)
    hub = await _hub(mosquitto, emulator, tmp_path, running_hubs, "2s")
    site = Site(mosquitto)
    site.subscribe("edge/v1/site-a/results")
    try:
        alarm = make_alert("site-a", random.randrange(1 << 40))
        site.publish("edge/v1/site-a/alerts", alarm)
        await async_wait_until(
            lambda: hub.consumer is not None and hub.consumer.stats.unexpected == 1,
            10,
            "the park",
        )
        assert _statuses(site, alarm["event_id"]) == []  # the agent awaits the final answer
        site.publish("edge/v1/site-a/alerts", json.dumps(alarm))  # resent while held
        await async_wait_until(
            lambda: len(_statuses(site, alarm["event_id"])) >= 1, 10, "the resend's answer"
        )
        assert _statuses(site, alarm["event_id"])[:1] == ["parked"]
        assert calls == [alarm["event_id"]]  # the resend did not run the handling
        assert hub.store is not None
        [held] = await asyncio.to_thread(hub.store.parked, "site-a", 10)
        assert (held.event_id, held.reason) == (alarm["event_id"], "unexpected_error")
        await async_wait_until(
            lambda: "ok" in _statuses(site, alarm["event_id"]), 20, "the alarm applied"
        )
        await asyncio.sleep(0.5)
        assert _statuses(site, alarm["event_id"]) == ["parked", "ok"]
        assert len(_ours(emulator, alarm["alert_id"])) == 1
        assert calls == [alarm["event_id"]] * 2
        assert hub.consumer is not None and hub.consumer.stats.unexpected == 1
        assert hub.store.pending_counts() == {}
    finally:
        site.close()
