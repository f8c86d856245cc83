"""The schema version each state file carries (a boundary: whatever is on disk). Any value
gives one of three outcomes, never another exception: read (a version this release reads),
refused with NewerFormatError (a later release's), or handled as damage by its store (not
a version at all: 0, negative, huge, a text)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.common.schema_version import MAX_VERSION, NewerFormatError
from edge_agent.forwarders.workorder_status import VERSION_KEY, WorkOrderTracker
from edge_agent.maintainx.ledger import LedgerError, SqliteLedger
from edge_agent.outbox.store import Outbox
from edge_agent.rules import RuleStateStore
from edge_agent.service.state_formats import check_state_folder

SETTINGS = settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
JSON_VERSIONS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)


def _later(found: object) -> bool:
    return type(found) is int and 1 < found <= MAX_VERSION


@SETTINGS
@given(found=INT32)
def test_outbox_user_version(tmp_path_factory: pytest.TempPathFactory, found: int) -> None:
    directory = tmp_path_factory.mktemp("outbox") / "outbox"
    with Outbox.open(directory, 1_000_000) as outbox:
        outbox.put({"n": 1})
    with sqlite3.connect(directory / "cache.db") as db:
        db.execute(f"PRAGMA user_version = {found}")
    if _later(found):
        with pytest.raises(NewerFormatError):
            check_state_folder(directory.parent)
        with pytest.raises(NewerFormatError):
            Outbox.open_or_replace(directory, 1_000_000)
        return
    with Outbox.open_or_replace(directory, 1_000_000) as outbox:
        # Version 0/1 is ours: the item is there. Anything else is damage: set aside whole.
        assert outbox.stats().depth == (1 if found in (0, 1) else 0)
        assert outbox.stats().replaced == (0 if found in (0, 1) else 1)


@SETTINGS
@given(found=INT32)
def test_ledger_user_version(tmp_path_factory: pytest.TempPathFactory, found: int) -> None:
    path = tmp_path_factory.mktemp("ledger") / "workorders.sqlite"
    SqliteLedger(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {found}")
    if _later(found):
        with pytest.raises(NewerFormatError):
            SqliteLedger(path)
    elif found in (0, 1):
        SqliteLedger(path).close()
    else:
        with pytest.raises(LedgerError):
            SqliteLedger(path)


@SETTINGS
@given(found=JSON_VERSIONS)
def test_rule_state_version(tmp_path_factory: pytest.TempPathFactory, found: object) -> None:
    store = RuleStateStore(tmp_path_factory.mktemp("rules") / "rule-state.json")
    store.path.write_text(json.dumps({"version": found, "site": "plant-a"}))
    if _later(found):
        with pytest.raises(NewerFormatError):
            store.load()
        assert store.path.exists()  # left for the release that wrote it
    elif found in (None, 1) and type(found) is not bool and type(found) is not float:
        assert store.load() is not None
    else:
        assert store.load() is None and store.discarded is not None


@SETTINGS
@given(found=JSON_VERSIONS)
def test_work_order_map_version(tmp_path_factory: pytest.TempPathFactory, found: object) -> None:
    state = tmp_path_factory.mktemp("map")
    entry = {"alert_id": "a", "work_order_id": 7, "status": "OPEN"}
    (state / "work-orders.json").write_text(json.dumps({VERSION_KEY: found, "hot": entry}))
    if _later(found):
        with pytest.raises(NewerFormatError):
            WorkOrderTracker(state, "plant-a")
        return
    tracker = WorkOrderTracker(state, "plant-a")
    readable = found is None or (type(found) is int and found == 1)
    assert tracker.open_work_order_for("hot") == (7 if readable else None)


def test_a_state_folder_without_files_passes(tmp_path: Path) -> None:
    check_state_folder(tmp_path / "nothing-here-yet")
