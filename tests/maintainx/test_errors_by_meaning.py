"""API errors are handled by what they mean (against the emulator over HTTP): only a 400
that names a field of the request is final for that request; a wrong base URL or a key
that needs an organization holds everything, unready, with nothing dead-lettered; a
proxy's 408 or 413 is retried."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edge_agent.config.secrets import Secret
from edge_agent.maintainx.client import MaintainXClient
from edge_agent.maintainx.errors import (
    BadRequest,
    Misconfigured,
    NotFound,
    TransientError,
)
from edge_agent.outbox.store import Outbox
from edge_agent.simulators.maintainx import Emulator
from tests.maintainx.conftest import SITE_KEY, Start, alert, make_client, wait_until


def _wrong_path(emulator: Emulator) -> str:
    """The emulator's URL with a base path it does not serve (``/v9`` for ``/v1``)."""
    return emulator.url.rstrip("/").rsplit("/", 1)[0] + "/v9"


async def test_the_client_sorts_4xx_by_meaning(emulator: Emulator, asset_id: int) -> None:
    async with make_client(emulator) as client:
        with pytest.raises(NotFound):  # one object that is gone
            await client.get_work_order(424242)
        with pytest.raises(BadRequest) as named:  # the request's own field
            await client.create_work_order({"title": "x", "assetId": 99})
        assert not isinstance(named.value, Misconfigured)
        for status in (408, 413):
            emulator.faults.force_status(status, {"error": "proxy says not now"})
            with pytest.raises(TransientError):
                await client.create_work_order({"title": "x", "assetId": asset_id})
        emulator.faults.force_status(400, {"errors": [{"error": "Missing x-organization-id"}]})
        with pytest.raises(Misconfigured):
            await client.create_work_order({"title": "x", "assetId": asset_id})
        emulator.faults.force_status(405, {"error": "Method Not Allowed"})
        with pytest.raises(Misconfigured):
            await client.create_work_order({"title": "x", "assetId": asset_id})
    # The same server under a wrong path: a collection that does not exist.
    async with MaintainXClient(_wrong_path(emulator), Secret(SITE_KEY), None, 2.0) as client:
        with pytest.raises(Misconfigured) as wrong:
            await client.create_work_order({"title": "x"})
        assert "base_url" in str(wrong.value)


async def test_a_wrong_base_url_holds_everything_and_dead_letters_nothing(
    emulator: Emulator, outbox: Outbox, start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    outbox.put_many([alert(n) for n in range(4)])
    forwarder = start(_wrong_path(emulator))
    await wait_until(lambda: forwarder.status.holding is not None)
    assert "base_url" in forwarder.status.holding
    stats = outbox.stats()
    assert (stats.depth, stats.dead) == (4, 0)
    assert forwarder.status.dead_lettered == 0 and forwarder.status.sent == 0
    # Said once, not once per alert.
    assert caplog.text.count("MaintainX refuses every request") == 1
    assert SITE_KEY not in caplog.text


async def test_a_key_that_needs_an_organization_holds_until_fixed(
    emulator: Emulator, asset_id: int, outbox: Outbox, start: Start, tmp_path: Path
) -> None:
    emulator.set_key(SITE_KEY, [1, 2])  # now x-organization-id is required
    outbox.put_many([alert(n, asset_mx=asset_id) for n in range(3)])
    forwarder = start(emulator.url)
    await wait_until(lambda: forwarder.status.holding is not None)
    assert outbox.stats().dead == 0
    emulator.set_key(SITE_KEY, [1])
    forwarder.reload_credentials()  # a reload tries again at once
    await wait_until(lambda: forwarder.status.sent == 3)
    assert forwarder.status.holding is None
    assert outbox.stats().depth == 0 and outbox.stats().dead == 0
    assert len(emulator.work_orders) == 3


async def test_a_proxy_408_or_413_is_retried_not_dead_lettered(
    emulator: Emulator, asset_id: int, outbox: Outbox, start: Start
) -> None:
    emulator.faults.force_status(408, {"error": "Request Timeout"})
    emulator.faults.force_status(413, {"error": "Payload too large"})
    outbox.put_many([alert(n, asset_mx=asset_id) for n in range(2)])
    forwarder = start(emulator.url, backoff="50ms", backoff_max="100ms")
    await wait_until(lambda: forwarder.status.sent == 2)
    assert outbox.stats().dead == 0
    assert [w["externalData"]["alert_id"] for w in emulator.work_orders] == [
        alert(0)["alert_id"],
        alert(1)["alert_id"],
    ]
    assert emulator.faults.injected["forced_408"] == emulator.faults.injected["forced_413"] == 1
