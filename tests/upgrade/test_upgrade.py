"""An upgrade keeps everything the previous release saved; a rollback refuses what a later
release saved instead of misreading it.

``previous_state/`` is what edge-agent 0.1.0 wrote (see make_previous_state.py): the agent's
state folder (outbox with a queued item, a dead letter and one awaiting the hub, rule state
mid-episode, work-order ledger and map, last good configuration) and a hub store. "Later"
is the same folder with every schema version raised to 2, as a later release would leave it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge_agent.common.schema_version import NewerFormatError
from edge_agent.config.models import SiteConfig
from edge_agent.forwarders.workorder_status import WorkOrderTracker
from edge_agent.hub.store_sqlite import SqliteHubStore
from edge_agent.maintainx.ledger import SqliteLedger
from edge_agent.outbox.store import Outbox
from edge_agent.rules import RuleEngine, RuleStateStore
from edge_agent.service.last_good import load_last_good
from edge_agent.service.state_formats import check_state_folder
from tests.conftest import REPO_ROOT, free_port

PREVIOUS = Path(__file__).parent / "previous_state"
SQLITE_FILES = ("state/outbox/cache.db", "state/workorders.sqlite", "hub/hub.sqlite")


@pytest.fixture
def previous(tmp_path: Path) -> Path:
    copy = tmp_path / "previous"
    shutil.copytree(PREVIOUS, copy)
    return copy


@pytest.fixture
def later(previous: Path) -> Path:
    """The previous release's folder with every schema version a later release's (2)."""
    for name in SQLITE_FILES:
        with sqlite3.connect(previous / name) as db:
            db.execute("PRAGMA user_version = 2")
    for name, key in (("rule-state.json", "version"), ("work-orders.json", "__schema_version__")):
        path = previous / "state" / name
        data = json.loads(path.read_text())
        path.write_text(json.dumps({**data, key: 2}))
    last_good = previous / "state" / "last-good-site.json"
    last_good.write_text(last_good.read_text().replace('"version": 1', '"version": 2', 1))
    return previous


def _config(state: Path) -> SiteConfig:
    config, problems = load_last_good(state)
    assert config is not None, problems
    return config


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def _contents(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, but the lock file ``run`` takes before it looks at the state."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.name != "agent.lock"
    }


def test_this_release_continues_on_the_previous_release_state(previous: Path) -> None:
    state = previous / "state"
    check_state_folder(state)
    config = _config(state)

    with Outbox.open_or_replace(state / "outbox", 10_000_000) as outbox:
        stats = outbox.stats()
        assert (stats.depth, stats.dead, stats.replaced, stats.quarantined) == (1, 1, 0, 0)
        [item] = outbox.peek(5)
        assert item.payload == {"n": 1, "what": "queued"}
        [dead] = outbox.dead_letters()
        assert dead.payload == {"n": 2, "what": "dead"}
        assert dead.reason == "refused by MaintainX: 400"
        [awaiting] = outbox.awaiting()
        assert awaiting.payload == {"n": 3, "what": "awaiting"}
        assert outbox.note("hub") == {"seen": True}

    engine = RuleEngine(config, RuleStateStore.in_directory(state))
    assert engine.rule_states() == {"hot": "ACTIVE"}  # the episode goes on: no second alarm

    ledger = SqliteLedger(state / "workorders.sqlite")
    try:
        assert ledger.work_order_for("alert-1") == 4242
        assert ledger.is_done("event-1")
    finally:
        ledger.close()

    tracker = WorkOrderTracker(state, "plant-a")
    assert tracker.open_work_order_for("hot") == 4242

    hub = SqliteHubStore(previous / "hub" / "hub.sqlite")
    try:
        assert hub.kpis(), "the hub's work order is still there"
    finally:
        hub.close()

    # Migrated: each file now says its version (0.1.0's said none).
    for name in SQLITE_FILES:
        assert _user_version(previous / name) == 1, name
    tracker.on_message(
        "edge/v1/plant-a/workorders/4242",
        b'{"rule": "hot", "work_order_id": 4242, "status": "IN_PROGRESS"}',
    )
    saved = json.loads((state / "work-orders.json").read_text())
    assert saved["__schema_version__"] == 1
    assert saved["hot"]["status"] == "IN_PROGRESS"


def _opens(state: Path, hub: Path) -> dict[str, Callable[[], Any]]:
    return {
        "state folder": lambda: check_state_folder(state),
        "outbox": lambda: Outbox.open_or_replace(state / "outbox", 10_000_000),
        "rule state": lambda: RuleStateStore.in_directory(state).load(),
        "ledger": lambda: SqliteLedger(state / "workorders.sqlite"),
        "work order map": lambda: WorkOrderTracker(state, "plant-a"),
        "last good configuration": lambda: load_last_good(state),
        "hub store": lambda: SqliteHubStore(hub / "hub.sqlite"),
    }


def test_a_rollback_refuses_the_later_release_state_and_leaves_it_as_it_was(later: Path) -> None:
    before = _contents(later)
    for store, open_it in _opens(later / "state", later / "hub").items():
        with pytest.raises(NewerFormatError) as refused:
            open_it()
        message = str(refused.value)
        assert refused.value.where.startswith(str(later)), store
        assert "schema version 2" in message and "up to 1" in message, message
        assert "Rollback" in message, message
    assert _contents(later) == before  # nothing set aside, migrated or rewritten
    assert not list((later / "state").glob("*.corrupt"))


def _site_file(tmp_path: Path, state: Path) -> Path:
    data = json.loads((state / "last-good-site.json").read_text())
    data["version"] = 1
    data["health"] = {"listen": f"127.0.0.1:{free_port()}"}
    site = tmp_path / "site.yaml"
    site.write_text(json.dumps(data))
    return site


def _run(site: Path, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "run", str(site), "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
    )


@pytest.mark.slow
def test_run_on_a_later_release_state_exits_3_with_the_reason(later: Path, tmp_path: Path) -> None:
    state = later / "state"
    before = _contents(state)
    done = _run(_site_file(tmp_path, state), state)
    assert done.returncode == 3, done.stderr
    assert "written by a later release" in done.stderr
    assert str(state / "outbox" / "cache.db") in done.stderr
    assert "Traceback" not in done.stderr
    assert _contents(state) == before

    # A broken site file: the later release's last good configuration is refused too.
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nsite: {id: NOT VALID}\n")
    done = _run(broken, state)
    assert done.returncode == 3, done.stderr
    assert "last good configuration has schema version 2" in done.stderr
