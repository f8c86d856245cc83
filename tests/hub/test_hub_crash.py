"""The hub SIGKILLed while it works, then restarted: every alert still gets its one work
order (the site resends what the hub did not answer), and none gets two."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from ruamel.yaml import YAML

from edge_agent.simulators.maintainx import Emulator
from tests.conftest import REPO_ROOT, Broker
from tests.hub.conftest import ResendingSite, hub_dict, make_alert, wait_until

N = 300


def _created(mx: Emulator, ids: set[str]) -> Counter[str]:
    return Counter(
        wo["externalData"]["alert_id"]
        for wo in mx.work_orders
        if (wo.get("externalData") or {}).get("alert_id") in ids
    )


def _start(hub_file: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "hub", str(hub_file)],
        cwd=REPO_ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


def test_sigkill_while_processing_loses_nothing_and_doubles_nothing(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path
) -> None:
    data = hub_dict(mosquitto, emulator.url, tmp_path / "state", concurrency=16)
    hub_file = tmp_path / "hub.yaml"
    with hub_file.open("w") as handle:
        YAML().dump(data, handle)
    log = tmp_path / "hub.log"
    process = _start(hub_file, log)
    try:
        # The hub's session must exist before the alerts are published.
        wait_until(lambda: b"running" in log.read_bytes(), 20, "hub up")
        time.sleep(0.3)
        base = random.randrange(1 << 40)
        alerts = [make_alert("site-a", base + i) for i in range(N)]
        ids = {m["alert_id"] for m in alerts}
        site = ResendingSite(mosquitto, "site-a", resend_after_s=3.0)
        site.send(alerts)
        wait_until(lambda: len(_created(emulator, ids)) >= 30, 30, "work has started")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        done_at_kill = len(_created(emulator, ids))
        assert done_at_kill < N, "the hub finished before it was killed; the test proves nothing"

        process = _start(hub_file, log)
        site.run_until(lambda: len(_created(emulator, ids)) == N, 60, "every alert's work order")
        site.run_until(
            lambda: (
                {e for e, status in site.answered().items() if status == "ok"}
                >= {m["event_id"] for m in alerts}
            ),
            30,
            "every result",
        )
        created = _created(emulator, ids)
        assert len(created) == N and set(created.values()) == {1}
        site.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        kpis = subprocess.run(
            [sys.executable, "-m", "edge_agent", "hub", str(hub_file), "kpis", "--json"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert kpis.returncode == 0, kpis.stderr
        rows = json.loads(kpis.stdout)["kpis"]
        assert sum(r["alerts_raised"] for r in rows) == N
        assert sum(r["work_orders_created"] for r in rows) == N
        assert sum(r["open_backlog"] for r in rows) == N
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
