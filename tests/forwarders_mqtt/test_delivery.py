"""The pieces both forwarders' delivery loops share (edge_agent.forwarders.delivery), on a
real outbox. Kept with the MQTT forwarder's tests: MQTT is the forwarder that leans on all
of them."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from edge_agent.common.backoff import Backoff
from edge_agent.forwarders.delivery import (
    DestinationHold,
    Wake,
    count_delivered,
    lease_or_report,
    nack_by_reason,
    release_on_stop,
)
from edge_agent.interfaces import ForwarderStatus
from edge_agent.outbox import Outbox

log = logging.getLogger("tests.delivery")


async def test_a_wake_set_after_arming_ends_the_idle_wait_at_once() -> None:
    wake = Wake()
    wake.arm()
    wake.set()  # e.g. a put between looking at the outbox and idling
    waiter = asyncio.ensure_future(wake.idle(3600.0))
    await asyncio.wait([waiter], timeout=5.0)
    assert waiter.done()


async def test_an_armed_wake_waits_until_set_or_the_other_event() -> None:
    wake, reload = Wake(), asyncio.Event()
    wake.arm()
    waiter = asyncio.ensure_future(wake.idle(3600.0, also=reload))
    await asyncio.sleep(0)
    assert not waiter.done()
    reload.set()
    await asyncio.wait([waiter], timeout=5.0)
    assert waiter.done()


async def test_lease_nack_and_release_keep_every_item_in_its_place(tmp_path: Path) -> None:
    status = ForwarderStatus()
    with Outbox.open(tmp_path / "outbox", 10_000_000) as outbox:
        for n in range(4):
            outbox.put({"n": n})
        items = await lease_or_report(outbox, 3, status, log, "lease failed")
        assert items is not None and [i.payload["n"] for i in items] == [0, 1, 2]
        nack_by_reason(outbox, [(items[0].id, "a"), (items[1].id, "b")], log, "nack failed")
        release_on_stop(outbox, items[2:])
        again = await lease_or_report(outbox, 10, status, log, "lease failed")
        assert again is not None and [i.payload["n"] for i in again] == [0, 1, 2, 3]
        assert status.last_error is None
        outbox.close()
        # A closed outbox: the lease fails, is reported, and the caller gets None.
        assert await lease_or_report(outbox, 1, status, log, "lease failed") is None
        assert status.last_error


def test_count_delivered_counts_and_starts_the_backoff_over() -> None:
    status = ForwarderStatus()
    backoff = Backoff(initial_s=1.0, max_s=60.0)
    for _ in range(5):
        backoff.next_delay()
    assert backoff.ceiling() > 1.0
    count_delivered(status, 3, backoff)
    assert status.sent == 3 and status.last_delivery_ns > 0
    assert backoff.ceiling() == 1.0


def test_a_hold_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    status = ForwarderStatus()
    hold = DestinationHold(status, log)
    with caplog.at_level(logging.INFO, logger="tests.delivery"):
        for n in range(3):
            hold.hold(f"refused {n}", "Destination refuses everything.", {"n": n})
        assert status.holding == "refused 2" and hold.holding
        hold.release("Destination accepts again.")
        hold.release("Destination accepts again.")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["Destination refuses everything.", "Destination accepts again."]
    assert status.holding is None
