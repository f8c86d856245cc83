"""SIGKILL of the forwarding process mid-drain, several times, with creates stored but never
answered: every activation still makes exactly one work order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from edge_agent.forwarders.maintainx.forwarder import MaintainXForwarder
from edge_agent.outbox.store import Outbox
from edge_agent.simulators.maintainx import Emulator, Faults
from tests.conftest import REPO_ROOT
from tests.maintainx.conftest import (
    SITE_KEY,
    alert,
    site_config,
    site_dict,
    wait_until,
    write_key,
)

ACTIVATIONS = 150

# The child: the real forwarder on the real outbox, until it is killed.
CHILD = """
import asyncio, sys
from pathlib import Path
from edge_agent.config.models import SiteConfig
from edge_agent.forwarders.maintainx.forwarder import MaintainXForwarder
from edge_agent.outbox.store import Outbox

work = Path(sys.argv[1])
site = SiteConfig.model_validate_json((work / "site.json").read_text())  # no I/O yet
outbox = Outbox.open(work / "outbox", max_bytes=50_000_000, lease_s=60.0)
forwarder = MaintainXForwarder(
    site.forwarding.maintainx, site, outbox, work / "state", work, idle_s=0.02
)
asyncio.run(forwarder.run())
"""


def _spawn(work: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(work)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
async def test_sigkill_mid_drain_never_doubles_a_work_order(tmp_path: Path) -> None:
    faults = Faults(timeout_after_store_rate=0.15, stall_s=0.5, error_rate=0.05, seed=7)
    with Emulator(keys={SITE_KEY: [1]}, rate_limiting=False, faults=faults) as mx:
        asset_id = mx.add_asset("Pump P-101")
        messages = [alert(n, asset_mx=asset_id) for n in range(ACTIVATIONS)]
        with Outbox.open(tmp_path / "outbox", max_bytes=50_000_000) as outbox:
            outbox.put_many(messages)
        settings = {"base_url": mx.url, "timeout": "200ms", "backoff": "5ms", "backoff_max": "50ms"}
        key_ref = write_key(tmp_path, SITE_KEY)
        site, config = site_config(key_ref, **settings)
        (tmp_path / "site.json").write_text(json.dumps(site_dict(key_ref, **settings)))

        kills = 0
        for target in (20, 60, 100):
            child = _spawn(tmp_path)
            deadline = time.monotonic() + 60
            while len(mx.work_orders) < target and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
            kills += 1
            assert len(mx.work_orders) >= target, "the child made no progress"

        # The last run, in-process, drains what is left.
        mx.faults.reset()
        outbox = Outbox.open(tmp_path / "outbox", max_bytes=50_000_000)
        forwarder = MaintainXForwarder(
            config, site, outbox, tmp_path / "state", tmp_path, idle_s=0.02
        )
        task = asyncio.create_task(forwarder.run())
        try:
            await wait_until(lambda: outbox.stats().depth == 0, timeout_s=60)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await forwarder.close()
        stats = outbox.stats()
        outbox.close()
        per_alert = Counter(w["externalData"]["alert_id"] for w in mx.work_orders)
        stalls = mx.faults.injected["timeout_after_store"]
        lookups = [r for r in mx.requests if r.path == "/v1/workorders" and "title" in r.query]

    assert kills == 3 and stalls > 0
    assert len(lookups) >= stalls  # each stored-but-unanswered create was looked up
    assert (stats.depth, stats.dead) == (0, 0)
    assert set(per_alert) == {m["alert_id"] for m in messages}
    assert max(per_alert.values()) == 1
