"""The MQTT path end to end with the real hub and the MaintainX emulator: the cases of
issue 11 §1 where the broker acknowledges alarms and then loses them. With delivery
confirmed by the hub, every alarm becomes exactly one work order.

- a hub stopped for an upgrade while the site raises 12 alarms, on a broker whose queue
  for the hub's session is capped (``max_queued_messages 3``): the broker drops 9;
- a broker SIGKILLed after its PUBACK, before it saved or delivered the alarms;
- a hub away longer than its session expiry: the broker forgets the session and its queue.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge_agent.forwarders.mqtt import MqttForwarder
from edge_agent.hub.app import Hub
from edge_agent.outbox import Outbox
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker, free_port, mosquitto_binary, wait_for_port
from tests.hub.conftest import (
    KEY_A,
    KEY_B,
    async_wait_until,
    hub_dict,
    make_alert,
    start_hub,
)

from .conftest import mqtt_config, running

SITE = "site-a"
N = 12


@dataclass
class CappedBroker(Broker):
    """mosquitto with a small queue per offline session and no periodic save: what the
    broker acknowledged lives in its memory only (until a clean stop)."""

    max_queued: int = 3

    def start(self) -> None:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "autosave_interval 3600\n"
            f"max_queued_messages {self.max_queued}\n"
            "max_inflight_messages 100\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        )
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "mosquitto.log").open("ab"),
        )
        wait_for_port(self.host, self.port)


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """The MaintainX emulator the hub's tests use: two sites, two keys, no rate limit."""
    with Emulator(
        keys={KEY_A: [101], KEY_B: [202]}, rate_limit=1_000_000, rate_limiting=False
    ) as mx:
        yield mx


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_TEST_KEY_A", KEY_A)
    monkeypatch.setenv("HUB_TEST_KEY_B", KEY_B)
    monkeypatch.setenv("HUB_TEST_WEBHOOK_SECRET", "whsec-test")


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[CappedBroker]:
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = CappedBroker(port=free_port(), workdir=workdir)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


def alarms(base: int) -> list[dict[str, Any]]:
    return [make_alert(SITE, base + i) for i in range(N)]


def created(mx: Emulator, ids: set[str]) -> Counter[str]:
    return Counter(
        wo["externalData"]["alert_id"]
        for wo in mx.work_orders
        if (wo.get("externalData") or {}).get("alert_id") in ids
    )


def agent(broker: Broker, outbox: Outbox, tmp_path: Path, **extra: Any) -> MqttForwarder:
    config = mqtt_config(
        broker.port,
        "edge/v1",
        confirm="hub",
        result_timeout="1s",
        result_timeout_max="2s",
        **extra,
    )
    return MqttForwarder(config, SITE, outbox, tmp_path, idle_poll_s=0.01)


async def exactly_one_work_order_each(
    mx: Emulator, outbox: Outbox, events: list[dict[str, Any]]
) -> None:
    ids = {e["alert_id"] for e in events}
    await async_wait_until(lambda: len(created(mx, ids)) == len(ids), 60, "a work order each")
    await async_wait_until(
        lambda: outbox.awaiting_count() == 0 and outbox.stats().depth == 0, 30, "all confirmed"
    )
    assert set(created(mx, ids).values()) == {1}  # never two


async def test_capped_broker_and_a_stopped_hub_lose_no_alarm(
    capped: CappedBroker, emulator: Emulator, tmp_path: Path
) -> None:
    data = hub_dict(capped, emulator.url, tmp_path / "hub-state")
    hub: Hub | None = await start_hub(data, tmp_path)
    outbox = Outbox.open(tmp_path / "outbox", 50_000_000)
    try:
        assert hub is not None
        await hub.close()  # stopped for an upgrade: its session stays, capped at 3
        hub = None
        events = alarms(1_000)
        outbox.put_many(events)
        forwarder = agent(capped, outbox, tmp_path)
        async with running(forwarder):
            # The broker acknowledged all 12 and drops what exceeds the hub session's
            # queue (all 12 if the hub's session ended with its connection): the outbox
            # still has them.
            await async_wait_until(lambda: outbox.awaiting_count() == N, 20, "12 PUBACKed")
            hub = await start_hub(data, tmp_path)
            await exactly_one_work_order_each(emulator, outbox, events)
            # The outbox write lands (in a worker thread) just before the count is updated.
            await async_wait_until(lambda: forwarder.status.sent == N, 10, "12 counted")
            assert forwarder.status.hub.resends > 0  # the broker did lose some
    finally:
        if hub is not None:
            await hub.close()
        outbox.close()


async def test_broker_sigkilled_after_its_puback_loses_no_alarm(
    capped: CappedBroker, emulator: Emulator, tmp_path: Path
) -> None:
    capped.max_queued = 1000
    capped.kill()
    capped.start()
    data = hub_dict(capped, emulator.url, tmp_path / "hub-state")
    hub: Hub | None = await start_hub(data, tmp_path)
    outbox = Outbox.open(tmp_path / "outbox", 50_000_000)
    try:
        assert hub is not None
        await hub.close()  # the broker queues for it, in memory
        hub = None
        events = alarms(2_000)
        outbox.put_many(events)
        forwarder = agent(capped, outbox, tmp_path)
        async with running(forwarder):
            await async_wait_until(lambda: outbox.awaiting_count() == N, 20, "12 PUBACKed")
            capped.kill()  # SIGKILL: what it acknowledged and did not save is gone
            capped.start()
            hub = await start_hub(data, tmp_path)
            await exactly_one_work_order_each(emulator, outbox, events)
    finally:
        if hub is not None:
            await hub.close()
        outbox.close()


async def test_hub_away_longer_than_its_session_expiry_loses_no_alarm(
    capped: CappedBroker, emulator: Emulator, tmp_path: Path
) -> None:
    capped.max_queued = 1000
    capped.kill()
    capped.start()
    data = hub_dict(capped, emulator.url, tmp_path / "hub-state")
    data["broker"]["session_expiry"] = "1s"
    hub: Hub | None = await start_hub(data, tmp_path)
    outbox = Outbox.open(tmp_path / "outbox", 50_000_000)
    try:
        assert hub is not None
        await hub.close()
        hub = None
        events = alarms(3_000)
        outbox.put_many(events)
        forwarder = agent(capped, outbox, tmp_path)
        async with running(forwarder):
            await async_wait_until(lambda: outbox.awaiting_count() == N, 20, "12 PUBACKed")
            # The hub stays away past its 1 s session expiry: the broker drops the session
            # and the 12 alarms queued in it. Nothing to poll for: time has to pass.
            await asyncio.sleep(2.5)
            hub = await start_hub(data, tmp_path)
            await exactly_one_work_order_each(emulator, outbox, events)
    finally:
        if hub is not None:
            await hub.close()
        outbox.close()
