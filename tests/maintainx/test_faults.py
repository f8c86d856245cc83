"""The promise under fire: 1,000 activations through an unreliable MaintainX (20% 500s, 429
bursts, 5% of writes stored but never answered, dropped connections) make exactly 1,000
work orders, one per alert id, and leave nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path

import pytest

from edge_agent.forwarders.maintainx.forwarder import MaintainXForwarder
from edge_agent.outbox.store import Outbox
from edge_agent.simulators.maintainx import Emulator, Faults
from tests.maintainx.conftest import SITE_KEY, alert, site_config, wait_until, write_key

ACTIVATIONS = 1000


@pytest.mark.slow
async def test_1000_activations_make_exactly_1000_work_orders(tmp_path: Path) -> None:
    faults = Faults(
        error_rate=0.20,
        burst_429_rate=0.002,
        burst_429_s=0.3,
        timeout_after_store_rate=0.05,
        stall_s=0.5,
        drop_rate=0.01,
        seed=20260527,
    )
    # Rate limiting on, but high, so the run is about faults and not about waiting.
    with Emulator(keys={SITE_KEY: [1]}, rate_limit=100_000, faults=faults) as mx:
        asset_id = mx.add_asset("Pump P-101")
        messages = [alert(n, asset_mx=asset_id) for n in range(ACTIVATIONS)]
        outbox = Outbox.open(tmp_path / "outbox", max_bytes=50_000_000, lease_s=60.0)
        outbox.put_many(messages)
        site, config = site_config(
            write_key(tmp_path, SITE_KEY),
            base_url=mx.url,
            # Each unconfirmed create rests three timeouts before its lookup (~60 of them).
            timeout="150ms",
            backoff="5ms",
            backoff_max="50ms",
        )
        forwarder = MaintainXForwarder(
            config, site, outbox, tmp_path / "state", tmp_path, idle_s=0.02
        )
        task = asyncio.create_task(forwarder.run())
        try:
            await wait_until(lambda: forwarder.status.sent == ACTIVATIONS, timeout_s=240)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await forwarder.close()
        stats = outbox.stats()
        outbox.close()
        work_orders = mx.work_orders
        injected = Counter(mx.faults.injected)

    per_alert = Counter(w["externalData"]["alert_id"] for w in work_orders)
    assert len(work_orders) == ACTIVATIONS
    assert set(per_alert) == {m["alert_id"] for m in messages}
    assert max(per_alert.values()) == 1
    assert (stats.depth, stats.dead) == (0, 0)
    # The faults really happened, in every kind.
    assert injected["500"] > 100
    assert injected["timeout_after_store"] > 10
    assert injected["burst_429"] >= 1 and injected["drop"] >= 1
    # Stored-but-unanswered creates were found again, not repeated.
    assert forwarder.status.found >= 1
    assert forwarder.status.created + forwarder.status.found == ACTIVATIONS
    print(
        f"\nfault run: {ACTIVATIONS} activations, injected {dict(injected)}, "
        f"found again {forwarder.status.found}, retries {forwarder.status.failed}"
    )
