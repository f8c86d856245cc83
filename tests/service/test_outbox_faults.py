"""The outbox failing under the running agent: a full disk below the cap makes it unready;
a locked store and an alert too large to store never stop the rules or lose an alert that
can be stored. Real outbox, real Modbus plant, the service in this process."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.config.loader import load_site
from edge_agent.service.app import OUTBOX_REFUSING, Service
from edge_agent.service.sdnotify import SystemdNotifier
from tests.conftest import REPO_ROOT, free_port
from tests.service.conftest import BackgroundLoop, site_document, write_site

DISK_FULL_CHILD = r"""
import asyncio, json, resource, signal, sys
from pathlib import Path
from edge_agent.config.loader import load_site
from edge_agent.outbox import Outbox, OutboxFull
from edge_agent.service.app import Service
from edge_agent.service.sdnotify import SystemdNotifier

async def main() -> None:
    site, state = Path(sys.argv[1]), Path(sys.argv[2])
    service = Service(site, load_site(site), state, notifier=SystemdNotifier({}))
    service.ready_event.set()  # readiness as for a started agent, no stage running
    agent = service.agent
    agent.outbox = Outbox.open(state / "outbox", agent.config.storage.max_bytes)
    report = {"before": service.readiness()}
    # The "disk" fills up: a file-size limit far below the outbox's cap.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, hard))
    for n in range(100_000):
        try:
            agent.outbox.put({"n": n, "pad": "x" * 300})
        except OutboxFull:
            break
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    report["full"] = service.readiness()
    report["healthz_full"] = service.liveness()
    agent.outbox.put({"n": "room again"})
    report["after"] = service.readiness()
    report["healthz_after"] = service.liveness()
    agent.outbox.close()
    print(json.dumps(report))

asyncio.run(main())
"""


def _site(tmp_path: Path, modbus_port: int, **changes: Any) -> Path:
    document = site_document(
        modbus_port=modbus_port,
        health_port=free_port(),
        storage=tmp_path / "state",
        forwarding={},
    )
    del document["forwarding"]  # alerts stay in the outbox, where the test looks
    document.update(changes)
    return write_site(tmp_path / "site.yaml", document)


def test_full_disk_below_the_cap_makes_the_agent_unready(tmp_path: Path) -> None:
    site = _site(tmp_path, free_port())
    result = subprocess.run(
        [sys.executable, "-c", DISK_FULL_CHILD, str(site), str(tmp_path / "state")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["before"][0] is True, report["before"]

    ready, details = report["full"]
    assert ready is False
    assert details["reasons"] == [OUTBOX_REFUSING]
    outbox = details["outbox"]
    assert outbox["refusing"] is True
    assert outbox["bytes"] < outbox["cap_bytes"] // 10  # far below the cap
    assert report["healthz_full"]["status"] == "degraded"
    assert report["healthz_full"]["outbox_refusing"] is True
    assert "disk full" in result.stderr  # the outbox logged the refusal

    # A put that succeeds ends the refusal: ready again.
    assert report["after"][0] is True, report["after"]
    assert report["after"][1]["outbox"]["refusing"] is False
    assert report["healthz_after"]["status"] == "ok"


async def _until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` on the event loop until truthy (bounded)."""
    async with asyncio.timeout(timeout):
        while not (result := condition()):
            await asyncio.sleep(0.05)
    return result


async def test_locked_store_and_oversized_alert_keep_the_rules_running(
    plant: Any, background: BackgroundLoop, tmp_path: Path
) -> None:
    site = _site(tmp_path, plant.port)
    document = json.loads(site.read_text())
    # The M-201 alert carries a description larger than the outbox takes (1 MB).
    document["rules"][1]["work_order"]["description"] = "spare parts: " + "x" * 1_100_000
    write_site(site, document)
    state = tmp_path / "state"
    background.run(lambda: plant.set_value("p101_vibration", 2.5))
    background.run(lambda: plant.set_value("m201_current", 35.0))
    config = await asyncio.to_thread(load_site, site)
    service = Service(site, config, state, notifier=SystemdNotifier({}))
    agent = service.agent
    await service.start()
    lock: sqlite3.Connection | None = None
    try:
        await _until(lambda: service.readiness()[0], 20, "ready")

        # 1. Another process holds the store's write lock: the put fails (after the store's
        #    lock timeout), is counted, logged and retried; the alert stays pending.
        lock = sqlite3.connect(state / "outbox" / "cache.db", isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        background.run(lambda: plant.set_value("p101_vibration", 9.5))
        await _until(lambda: agent.counters.outbox_write_errors >= 1, 30, "a failed put")
        assert "locked" in (agent.outbox_write_error or "")
        assert [m["rule"] for m in agent.rule_store.pending_messages] == ["p101-vibration-high"]
        assert agent.task_failures() == []
        ready, details = service.readiness()
        assert ready is False
        assert any(
            r.startswith("polling continues, 1 alerts held: outbox writes fail")
            for r in details["reasons"]
        )
        readings = agent.counters.readings["good"]
        lock.execute("ROLLBACK")
        lock.close()
        lock = None
        # Released: the retry stores it; the rules kept reading all along.
        await _until(lambda: agent.outbox.stats().depth == 1, 30, "the alert stored")
        await _until(lambda: service.readiness()[0], 10, "ready again")
        assert agent.rule_store.pending_messages == []
        assert agent.outbox_write_error is None and agent.holding_alerts == 0
        assert agent.counters.readings["good"] > readings

        # 2. An alert too large to ever store: counted, logged, dropped from pending.
        background.run(lambda: plant.set_value("m201_current", 70.0))
        await _until(lambda: agent.counters.alerts_rejected == 1, 20, "the rejection")
        assert agent.rule_store.pending_messages == []
        assert agent.task_failures() == []
        assert agent.outbox.stats().depth == 1
        assert service.readiness()[0] is True
        metrics = service.registry.get_sample_value
        assert metrics("edge_agent_alerts_rejected_total") == 1
        assert (metrics("edge_agent_outbox_write_errors_total") or 0) >= 1
        assert metrics("edge_agent_outbox_refusing") == 0
    finally:
        if lock is not None:
            lock.close()
        await service.stop()
        background.run(lambda: plant.set_value("p101_vibration", 2.5))
        background.run(lambda: plant.set_value("m201_current", 35.0))
