"""A dead replica costs no alarms (issue 20 §1). Two replicas in one group; the one that
subscribed first dies for good (SIGKILL) or stops (SIGTERM). Its session ends with its
connection (session expiry 0), so the broker routes the group's alerts to the survivor only;
what the stopped one held unanswered the site resends. N alarms → N work orders, each once.

PostgreSQL at 127.0.0.1:5432 is used as the replicas' shared store when it answers (else each
replica has its own SQLite file, which is enough here: the first replica is gone)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from edge_agent.simulators.maintainx import Emulator
from tests.conftest import REPO_ROOT, Broker
from tests.hub.conftest import (
    PG_DSN,
    ResendingSite,
    Site,
    hub_dict,
    make_alert,
    pg_available,
    wait_until,
)

N = 10
RESEND_AFTER_S = 3.0


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


class Replica:
    def __init__(self, data: dict[str, Any], folder: Path) -> None:
        self.data = data
        self.file = folder / f"{data['hub']['id']}.yaml"
        with self.file.open("w") as handle:
            YAML().dump(data, handle)
        self.log = folder / f"{data['hub']['id']}.log"
        self.health_port = int(data["health"]["listen"].rsplit(":", 1)[1])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "hub", str(self.file)],
            cwd=REPO_ROOT,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HUB_TEST_PG_DSN": PG_DSN},
        )

    def wait_ready(self) -> None:
        wait_until(lambda: _ready(self.health_port), 30, f"{self.file.stem} ready")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def dedup() -> Iterator[dict[str, Any]]:
    """The replicas' store: one PostgreSQL schema when PostgreSQL answers, else SQLite."""
    why = pg_available()
    if why is not None:
        print(f"replica test on SQLite: {why}")
        yield {"backend": "sqlite"}
        return
    import uuid

    import psycopg

    schema = f"hubtest_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield {"backend": "postgres", "dsn": "${HUB_TEST_PG_DSN}", "table_prefix": f"{schema}.hub_"}
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _created(mx: Emulator, ids: set[str]) -> Counter[str]:
    return Counter(
        wo["externalData"]["alert_id"]
        for wo in mx.work_orders
        if (wo.get("externalData") or {}).get("alert_id") in ids
    )


def _two_replicas(
    mosquitto: Broker, emulator: Emulator, tmp_path: Path, dedup: dict[str, Any]
) -> tuple[Replica, Replica]:
    group = f"g{random.randrange(1 << 30)}"
    replicas = []
    for name in ("hub-first", "hub-second"):
        data = hub_dict(
            mosquitto, emulator.url, tmp_path / name, hub_id=name, group=group, dedup=dedup
        )
        replica = Replica(data, tmp_path)
        replica.wait_ready()  # subscribed: the first one is the first member of the group
        replicas.append(replica)
    return replicas[0], replicas[1]


def _presence(mosquitto: Broker, replica: str) -> str | None:
    watcher = Site(mosquitto)
    try:
        watcher.subscribe(f"edge/v1/hub/status/{replica}")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not watcher.received:
            time.sleep(0.05)
        return watcher.received[-1][1].get("state") if watcher.received else None
    finally:
        watcher.close()


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_replica_that_dies_costs_no_alarms(
    how: str, mosquitto: Broker, emulator: Emulator, tmp_path: Path, dedup: dict[str, Any]
) -> None:
    first, second = _two_replicas(mosquitto, emulator, tmp_path, dedup)
    # After a SIGKILL the site resends late: a message the broker gave the dead replica is
    # never answered and is still resent (and counted below), while a slow answer on a busy
    # machine is not mistaken for one.
    resend_after_s = RESEND_AFTER_S if how == "SIGTERM" else 5 * RESEND_AFTER_S
    site = ResendingSite(mosquitto, "site-a", resend_after_s=resend_after_s)
    try:
        base = random.randrange(1 << 40)
        alerts = [make_alert("site-a", base + i) for i in range(N)]
        ids = {m["alert_id"] for m in alerts}
        assert _presence(mosquitto, "hub-first") == "online"
        if how == "SIGKILL":
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(timeout=10)
            died_at = time.monotonic()
            site.send(alerts)
        else:
            site.send(alerts)  # some reach the first replica before it stops
            first.process.send_signal(signal.SIGTERM)
            assert first.process.wait(timeout=10) == 0, "SIGTERM must stop a replica within 10 s"
            died_at = time.monotonic()
        site.run_until(lambda: len(_created(emulator, ids)) == N, 60, "N work orders")
        elapsed = time.monotonic() - died_at
        site.run_until(lambda: not site.awaiting(), 30, "every result")
        created = _created(emulator, ids)
        assert len(created) == N and set(created.values()) == {1}
        print(f"{how}: {N} alarms → {N} work orders, {elapsed:.2f} s from the death to the last")
        if how == "SIGKILL":
            # The broker sent nothing to the dead replica: no resend was needed.
            assert site.publishes == N
        # The first replica is offline for the agents: its last will, or its farewell.
        assert _presence(mosquitto, "hub-first") == "offline"
        assert _presence(mosquitto, "hub-second") == "online"
    finally:
        site.close()
        first.stop()
        second.stop()
