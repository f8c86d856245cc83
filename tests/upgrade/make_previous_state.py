"""Writes ``previous_state/``: a state folder and a hub store as edge-agent 0.1.0 left them.

Run with 0.1.0's code first on the path, so that its own stores write every file (this
file uses nothing 0.1.0 did not have):

    git archive f6aff13 edge_agent tests | tar -x -C OLD
    PYTHONPATH=OLD python OLD/../this-file OUT

The result is committed (tests/upgrade/previous_state): the upgrade tests must run in any
clone, shallow or not, and always against what the previous release really wrote.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

from edge_agent.forwarders.workorder_status import WorkOrderTracker
from edge_agent.hub.store import AlertRecord
from edge_agent.hub.store_sqlite import SqliteHubStore
from edge_agent.maintainx.ledger import SqliteLedger
from edge_agent.outbox.store import Outbox
from edge_agent.rules import RuleEngine, RuleStateStore
from edge_agent.service.last_good import save_last_good
from tests.rules.conftest import reading, site

RULE = {
    "id": "hot",
    "asset": "p101",
    "sensor": "temp",
    "high": {"limit": 80, "deadband": 5},
    "on_delay": "10s",
}


def main(out: Path) -> None:
    state = out / "state"
    state.mkdir(parents=True)
    config = site([RULE])
    save_last_good(state, config)

    engine = RuleEngine(config, RuleStateStore.in_directory(state))
    engine.feed(reading(0, 85))
    [activated] = engine.tick(reading(10, 0).source_time_ns)
    assert activated.kind == "activated"

    with Outbox.open(state / "outbox", 10_000_000) as outbox:
        queued, dead, awaiting = outbox.put_many(
            [{"n": 1, "what": "queued"}, {"n": 2, "what": "dead"}, {"n": 3, "what": "awaiting"}]
        )
        outbox.dead_letter(dead, "refused by MaintainX: 400")
        outbox.mark_awaiting([awaiting], sent_at=1_700_000_000.0)
        outbox.set_note("hub", {"seen": True})
        assert queued

    ledger = SqliteLedger(state / "workorders.sqlite")
    ledger.begin_create("alert-1")
    ledger.record_created("alert-1", 4242)
    ledger.mark_done("event-1", "created 4242")
    ledger.close()

    tracker = WorkOrderTracker(state, "plant-a")
    tracker.on_message(
        "edge/v1/plant-a/results",
        b'{"status": "ok", "rule": "hot", "alert_id": "alert-1", "work_order_id": 4242}',
    )

    hub = out / "hub"
    hub.mkdir()
    store = SqliteHubStore(hub / "hub.sqlite")
    ledger_at_hub = store.ledger(AlertRecord("plant-a", "alert-1", "p101", "hot", 10**18))
    asyncio.run(ledger_at_hub.begin_create("alert-1"))  # the hub's ledger is async
    asyncio.run(ledger_at_hub.record_created("alert-1", 4242))
    asyncio.run(ledger_at_hub.mark_done("event-1", "created 4242"))
    store.close()
    for db in (state / "outbox" / "cache.db", state / "workorders.sqlite", hub / "hub.sqlite"):
        with sqlite3.connect(db) as connection:  # one file each, no WAL beside it
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            connection.execute("PRAGMA journal_mode=DELETE")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
