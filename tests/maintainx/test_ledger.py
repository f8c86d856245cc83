"""The SQLite ledger: durable across reopening, and honest about unconfirmed creates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edge_agent.maintainx.ledger import SqliteLedger, WorkOrderLedger


def test_begin_create_reports_an_unconfirmed_earlier_attempt(tmp_path: Path) -> None:
    ledger: WorkOrderLedger = SqliteLedger(tmp_path / "l.sqlite")
    assert ledger.begin_create("a") is False  # first attempt
    assert ledger.begin_create("a") is True  # the first one was never confirmed
    ledger.record_created("a", 17)
    assert ledger.work_order_for("a") == 17
    assert ledger.begin_create("b") is False
    assert ledger.work_order_for("b") is None


def test_survives_reopen_and_a_killed_writer(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from edge_agent.maintainx.ledger import SqliteLedger\n"
        "ledger = SqliteLedger(Path(sys.argv[1]))\n"
        "ledger.begin_create('pending')\n"
        "ledger.begin_create('done')\n"
        "ledger.record_created('done', 5)\n"
        "ledger.mark_done('done:activated', 'created')\n"
        "os._exit(0)  # no close, no cleanup: as abrupt as a kill after the writes\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=30)
    reopened = SqliteLedger(path)
    assert reopened.work_order_for("done") == 5
    assert reopened.is_done("done:activated")
    assert reopened.result_of("done:activated") == "created"
    assert not reopened.is_done("pending:activated")
    assert reopened.begin_create("pending") is True
    reopened.close()


def test_abandon_create_closes_an_attempt_that_certainly_failed(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.sqlite")
    assert ledger.begin_create("a") is False
    ledger.abandon_create("a")  # e.g. a 500 or a refused connection
    assert ledger.begin_create("a") is False
    assert ledger.begin_create("a") is True  # that one was never confirmed nor abandoned
    ledger.record_created("a", 3)
    ledger.abandon_create("a")  # too late: a recorded work order stays
    assert ledger.work_order_for("a") == 3
