"""The MaintainX forwarder on the real outbox and the emulator over HTTP."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from edge_agent.forwarders.maintainx.forwarder import MaintainXForwarder
from edge_agent.outbox.store import Outbox
from edge_agent.simulators.maintainx import Emulator
from tests.maintainx.conftest import (
    SITE_KEY,
    Start,
    alert,
    site_config,
    stop,
    wait_until,
    write_key,
)


async def test_events_reach_the_right_work_orders_in_order(
    emulator: Emulator, asset_id: int, outbox: Outbox, start: Start
) -> None:
    outbox.put_many(
        [
            alert(1, asset_mx=asset_id),
            alert(2, asset_mx=asset_id),
            alert(1, "escalated", asset_mx=asset_id, priority="HIGH", qualifier="HIGH"),
            alert(2, "cleared", asset_mx=asset_id),
            alert(1, "cleared", asset_mx=asset_id),
            alert(3, asset_mx=asset_id, notify=False),
        ]
    )
    forwarder = start(emulator.url)
    await wait_until(lambda: forwarder.status.sent == 6)
    by_alert = {w["externalData"]["alert_id"]: w for w in emulator.work_orders}
    assert set(by_alert) == {alert(1)["alert_id"], alert(2)["alert_id"]}
    one, two = by_alert[alert(1)["alert_id"]], by_alert[alert(2)["alert_id"]]
    assert (one["priority"], two["priority"]) == ("HIGH", "MEDIUM")
    assert [c["content"].split(" at ")[0] for c in emulator.comments(one["id"])] == [
        "Escalated to HIGH",
        "Returned to normal",
    ]
    assert [c["content"].split(" at ")[0] for c in emulator.comments(two["id"])] == [
        "Returned to normal"
    ]
    assert outbox.stats().depth == 0
    assert forwarder.status.created == 2
    assert forwarder.status.connected and forwarder.status.last_delivery_ns > 0
    assert outbox.stats().dead == 0


async def test_400_goes_to_the_dead_letters_with_the_reason(
    emulator: Emulator, asset_id: int, outbox: Outbox, start: Start
) -> None:
    broken = alert(9)
    del broken["event_id"]
    outbox.put_many([alert(1, asset_mx=987654), broken, alert(2, asset_mx=asset_id)])
    forwarder = start(emulator.url)
    await wait_until(lambda: forwarder.status.sent == 1 and forwarder.status.dead_lettered == 2)
    letters = outbox.dead_letters()
    assert len(letters) == 2
    assert letters[0].payload["alert_id"] == alert(1)["alert_id"]
    assert letters[0].reason.startswith("MaintainX HTTP 400: ")
    assert '"fieldPath": "assetId"' in letters[0].reason and "Asset not found" in letters[0].reason
    assert letters[1].reason.startswith("invalid alert message")
    # What came after the refused items was delivered.
    assert [w["externalData"]["alert_id"] for w in emulator.work_orders] == [alert(2)["alert_id"]]
    assert outbox.stats().depth == 0


async def test_401_stops_sending_keeps_everything_and_resumes_on_reload(
    emulator: Emulator,
    outbox: Outbox,
    start: Start,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    emulator.revoke_key(SITE_KEY)
    outbox.put_many([alert(n) for n in range(5)])
    forwarder = start(emulator.url)
    await wait_until(lambda: forwarder.status.credentials_rejected)
    assert "credentials rejected" in caplog.text
    assert SITE_KEY not in caplog.text
    refused = len(emulator.requests)
    await asyncio.sleep(0.3)  # many idle cycles: none of them may send
    assert len(emulator.requests) == refused == 1
    stats = outbox.stats()
    assert (stats.depth, stats.dead) == (5, 0)

    emulator.set_key("rotated-key", [1])
    write_key(tmp_path, "rotated-key")
    forwarder.reload_credentials()
    await wait_until(lambda: forwarder.status.sent == 5)
    assert not forwarder.status.credentials_rejected
    assert len(emulator.work_orders) == 5 and outbox.stats().depth == 0
    assert {r.api_key for r in emulator.requests[refused:]} == {"rotated-key"}


async def test_restart_with_an_unknown_outcome_finds_the_work_order(
    emulator: Emulator, asset_id: int, tmp_path: Path, start: Start
) -> None:
    box = Outbox.open(tmp_path / "outbox2", max_bytes=10_000_000, lease_s=30.0)
    box.put(alert(1, asset_mx=asset_id))
    emulator.faults.timeout_after_store_rate = 1.0
    emulator.faults.stall_s = 1.0
    # The first run: its create is stored, the answer never comes, and it backs off long.
    first = MaintainXForwarder(
        *reversed(
            site_config(
                write_key(tmp_path, SITE_KEY),
                base_url=emulator.url,
                timeout="200ms",
                backoff="30s",
                backoff_max="60s",
            )
        ),
        box,
        tmp_path / "state",
        tmp_path,
        idle_s=0.02,
    )
    task = asyncio.create_task(first.run())
    await wait_until(lambda: first.status.failed >= 1)
    await stop(first, task)
    box.close()
    # The client gave up after 200 ms; on a loaded machine the emulator may store the
    # create only after that.
    await wait_until(lambda: len(emulator.work_orders) == 1)
    emulator.faults.reset()

    box = Outbox.open(tmp_path / "outbox2", max_bytes=10_000_000, lease_s=30.0)
    second = start(emulator.url, box=box)
    await wait_until(lambda: second.status.sent == 1)
    assert box.stats().depth == 0
    box.close()
    assert len(emulator.work_orders) == 1
    assert second.status.found == 1 and second.status.created == 0
    creates = [r for r in emulator.requests if r.method == "POST" and r.path == "/v1/workorders"]
    assert len(creates) == 1
    lookups = [r for r in emulator.requests if r.path == "/v1/workorders" and "title" in r.query]
    assert len(lookups) == 1


async def test_health_is_known_before_any_alert(emulator: Emulator, start: Start) -> None:
    """An idle forwarder probes MaintainX once: reachable and key accepted, or not."""
    ok = start(emulator.url)
    await wait_until(lambda: ok.status.connected)
    emulator.revoke_key("bad-key")
    rejected = start(emulator.url, key="bad-key")
    await wait_until(lambda: rejected.status.credentials_rejected)
    assert not rejected.status.connected
    assert [r.status for r in emulator.requests if r.api_key == "bad-key"] == [401]


async def test_403_for_the_organization_stops_and_keeps_everything(
    emulator: Emulator, outbox: Outbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A key without access to the configured organization (403) is handled like a 401."""
    caplog.set_level(logging.WARNING)
    outbox.put_many([alert(n) for n in range(3)])
    site, config = site_config(write_key(tmp_path, SITE_KEY), base_url=emulator.url)
    config = config.model_copy(update={"organization_id": 2})  # the key has only org 1
    forwarder = MaintainXForwarder(config, site, outbox, tmp_path / "state", tmp_path, idle_s=0.02)
    task = asyncio.create_task(forwarder.run())
    try:
        await wait_until(lambda: forwarder.status.credentials_rejected)
        assert forwarder.status.last_error == "credentials rejected (HTTP 403)"
        assert "credentials rejected" in caplog.text
        sent = len(emulator.requests)
        await asyncio.sleep(0.3)
        assert len(emulator.requests) == sent  # stopped
        assert (outbox.stats().depth, outbox.stats().dead) == (3, 0)
        # The configuration is fixed and reloaded: sending resumes.
        forwarder.reload_credentials(config.model_copy(update={"organization_id": 1}))
        await wait_until(lambda: forwarder.status.sent == 3)
    finally:
        await stop(forwarder, task)
    assert len(emulator.work_orders) == 3 and outbox.stats().depth == 0


async def test_5xx_are_retried_with_backoff_not_in_a_storm(
    emulator: Emulator, outbox: Outbox, start: Start
) -> None:
    outbox.put(alert(1))
    emulator.faults.error_rate = 1.0  # MaintainX answers 500 to everything
    forwarder = start(emulator.url, backoff="50ms", backoff_max="200ms")
    await wait_until(lambda: forwarder.status.failed >= 3)
    await asyncio.sleep(1.5)
    requests = len(emulator.requests)
    # An answer takes about a millisecond here: without the backoff this window would hold
    # a thousand requests; with it (full jitter up to 0.2 s) about one per 0.1 s.
    assert 3 <= requests <= 80
    assert (outbox.stats().depth, outbox.stats().dead) == (1, 0)  # kept, in place
    assert forwarder.status.sent == 0 and emulator.work_orders == []
    emulator.faults.reset()
    await wait_until(lambda: forwarder.status.sent == 1)
    assert len(emulator.work_orders) == 1


async def test_wake_ends_the_idle_wait(emulator: Emulator, outbox: Outbox, tmp_path: Path) -> None:
    site, config = site_config(write_key(tmp_path, SITE_KEY), base_url=emulator.url)
    forwarder = MaintainXForwarder(config, site, outbox, tmp_path / "state", tmp_path, idle_s=3600)
    task = asyncio.create_task(forwarder.run())
    try:
        await wait_until(lambda: forwarder.status.connected)  # probed, now idling for an hour
        await asyncio.sleep(0.2)
        outbox.put(alert(1))
        forwarder.wake()
        await wait_until(lambda: forwarder.status.sent == 1, timeout_s=20)
    finally:
        await stop(forwarder, task)
    assert len(emulator.work_orders) == 1


async def test_cancel_is_not_lost_when_a_reload_comes_at_the_same_moment(
    emulator: Emulator, outbox: Outbox, tmp_path: Path
) -> None:
    """A reload (or wake) arriving in the same loop turn as the cancel must not swallow it
    (``asyncio.wait_for`` on Python 3.11 does): run() has to stop."""
    outbox.put(alert(1))
    emulator.faults.error_rate = 1.0  # every delivery fails: the forwarder sleeps its backoff
    site, config = site_config(
        write_key(tmp_path, SITE_KEY), base_url=emulator.url, backoff="30s", backoff_max="60s"
    )
    forwarder = MaintainXForwarder(config, site, outbox, tmp_path / "state", tmp_path, idle_s=3600)
    for signal_it in (forwarder.reload_credentials, forwarder.wake):
        task = asyncio.create_task(forwarder.run())
        await wait_until(lambda: forwarder.status.failed >= 1)
        await asyncio.sleep(0.1)  # in the backoff sleep
        signal_it()
        task.cancel()  # in the same turn of the loop
        done, _ = await asyncio.wait({task}, timeout=10)
        assert done == {task}, "the cancel was swallowed: run() goes on"
        forwarder.status.failed = 0
    await forwarder.close()
    assert (outbox.stats().depth, outbox.stats().dead) == (1, 0)


async def test_a_create_that_lands_after_its_timeout_is_found_not_repeated(
    emulator: Emulator, asset_id: int, outbox: Outbox, start: Start
) -> None:
    """A slow link holds the create past the client's timeout; it lands later. The retry
    rests three timeouts first, so its lookup finds the work order instead of making a
    second one (issue 22: the fault campaign found this at the hub; the direct path is the
    same code)."""
    outbox.put(alert(1, asset_mx=asset_id))
    emulator.faults.latency_s = 0.8  # the create lands 0.8 s after it was sent
    forwarder = start(emulator.url, timeout="400ms", backoff="50ms", backoff_max="100ms")
    await wait_until(lambda: forwarder.status.failed >= 1)
    emulator.faults.latency_s = 0.0  # from now on quick: a retry without rest looks too early
    await wait_until(lambda: forwarder.status.sent == 1)
    await asyncio.sleep(1.2)  # a second create, if one was sent, has landed
    mine = [
        w for w in emulator.work_orders if w["externalData"]["alert_id"] == alert(1)["alert_id"]
    ]
    assert len(mine) == 1
    assert forwarder.status.found == 1 and forwarder.status.created == 0
