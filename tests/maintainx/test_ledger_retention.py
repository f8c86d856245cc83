"""The work-order ledger is pruned by age, its WAL truncated, and its rows counted against
``storage.max_bytes`` with the outbox (issue 17 §2). Found on main: ``workorders.sqlite``
grew by ~135 bytes per event for ever, and its ~4 MB WAL stayed after every burst."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge_agent.common.sqlite_wal import wal_bytes
from edge_agent.common.time_units import NS_PER_DAY
from edge_agent.config.models import Storage
from edge_agent.maintainx.ledger import SqliteLedger
from edge_agent.outbox import Outbox, OutboxFull


def _age(ledger: SqliteLedger, days: int) -> None:
    """Make every row ``days`` old (as if written then)."""
    then = time.time_ns() - days * NS_PER_DAY
    ledger._db.execute("UPDATE events SET done_ns = ?", (then,))
    ledger._db.execute("UPDATE work_orders SET updated_ns = ?", (then,))


def test_prune_forgets_only_what_is_older_than_the_retention(tmp_path: Path) -> None:
    path = tmp_path / "workorders.sqlite"
    ledger = SqliteLedger(path)
    try:
        for n in range(200):
            ledger.record_created(f"old-alert-{n}", n + 1)
            ledger.mark_done(f"old-event-{n}", "created")
        _age(ledger, 100)
        ledger.record_created("new-alert", 99_999)
        ledger.mark_done("new-event", "created")
        assert wal_bytes(path) > 0
        before = ledger.data_bytes
        assert before == ledger._measure()  # the running count is exact

        assert ledger.prune(time.time_ns() - 90 * NS_PER_DAY) == 400
        assert ledger.work_order_for("new-alert") == 99_999 and ledger.is_done("new-event")
        assert ledger.work_order_for("old-alert-1") is None
        assert not ledger.is_done("old-event-1")
        assert ledger.data_bytes == ledger._measure() < before / 100
        assert wal_bytes(path) == 0
    finally:
        ledger.close()


def test_the_ledger_shares_the_cap_with_the_outbox(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "workorders.sqlite")
    try:
        with Outbox.open(tmp_path / "outbox", max_bytes=20_000) as outbox:
            outbox.shared_bytes = lambda: ledger.data_bytes
            outbox.put({"pad": "x" * 1000})
            for n in range(250):
                ledger.mark_done(f"event-{n:04d}-{'e' * 60}", "created")
            # The outbox alone has room; with the ledger's rows it has not.
            assert outbox.stats().bytes + ledger.data_bytes > 20_000 > outbox.stats().bytes
            with pytest.raises(OutboxFull):
                outbox.put({"pad": "x" * 1000})
            _age(ledger, 100)
            ledger.prune(time.time_ns() - 90 * NS_PER_DAY)
            outbox.put({"pad": "x" * 1000})
    finally:
        ledger.close()


def test_the_retention_must_outlast_every_resend_window() -> None:
    assert Storage().ledger_retention == 90 * NS_PER_DAY
    for too_short in ("1d", "24h", "6d"):
        with pytest.raises(ValidationError, match="longer than any window"):
            Storage.model_validate({"ledger_retention": too_short})
    assert Storage.model_validate({"ledger_retention": "7d"}).ledger_retention == 7 * NS_PER_DAY


async def test_the_forwarder_prunes_its_ledger_at_start_and_reports_its_bytes(
    tmp_path: Path,
) -> None:
    from edge_agent.config.models import SiteConfig
    from edge_agent.forwarders.maintainx.forwarder import MaintainXForwarder
    from tests.service.rule_agent import HEALTHY_RULE, fault_site_document

    ledger = SqliteLedger(tmp_path / "workorders.sqlite")
    ledger.mark_done("old-event", "created")
    _age(ledger, 100)
    ledger.mark_done("new-event", "created")
    ledger.close()
    document = fault_site_document(tmp_path, [HEALTHY_RULE])
    document["forwarding"] = {
        "mode": "maintainx",
        "maintainx": {"base_url": "http://127.0.0.1:9/v1", "api_key": "${UNUSED_KEY}"},
    }
    config = SiteConfig.model_validate(document)
    assert config.forwarding is not None and config.forwarding.maintainx is not None
    with Outbox.open(tmp_path / "outbox", max_bytes=1_000_000) as outbox:
        forwarder = MaintainXForwarder(
            config.forwarding.maintainx, config, outbox, tmp_path, tmp_path
        )
        assert forwarder.stored_bytes() == 0  # no ledger open yet
        assert await forwarder._open_ledger()
        await forwarder._prune_ledger_if_due()
        assert forwarder.ledger is not None
        assert not forwarder.ledger.is_done("old-event") and forwarder.ledger.is_done("new-event")
        assert forwarder.stored_bytes() == forwarder.ledger._measure() > 0
        await forwarder.close()


async def test_a_wall_clock_set_years_ahead_does_not_wipe_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway that starts with its date years ahead (a wrong RTC or a mistyped
    ``date -s``) prunes at start: counted from that clock, every work order of every open
    episode would be forgotten (clearings lost, redeliveries creating second work orders)."""
    from edge_agent.config.models import SiteConfig
    from edge_agent.forwarders.maintainx import forwarder as forwarder_module
    from edge_agent.forwarders.maintainx.forwarder import MaintainXForwarder
    from tests.service.rule_agent import HEALTHY_RULE, fault_site_document

    ledger = SqliteLedger(tmp_path / "workorders.sqlite")
    ledger.record_created("open-alert", 4242)
    ledger.mark_done("open-alert:activated", "created")
    ledger.mark_done("old-event", "created")
    ledger._db.execute("UPDATE events SET done_ns = ? WHERE event_id = 'old-event'", (1,))
    ledger.close()
    document = fault_site_document(tmp_path, [HEALTHY_RULE])
    document["forwarding"] = {
        "mode": "maintainx",
        "maintainx": {"base_url": "http://127.0.0.1:9/v1", "api_key": "${UNUSED_KEY}"},
    }
    config = SiteConfig.model_validate(document)
    assert config.forwarding is not None and config.forwarding.maintainx is not None
    real = time.time_ns
    monkeypatch.setattr(forwarder_module.time, "time_ns", lambda: real() + 3650 * NS_PER_DAY)
    with Outbox.open(tmp_path / "outbox", max_bytes=1_000_000) as outbox:
        forwarder = MaintainXForwarder(
            config.forwarding.maintainx, config, outbox, tmp_path, tmp_path
        )
        assert await forwarder._open_ledger()
        await forwarder._prune_ledger_if_due()
        assert forwarder.ledger is not None
        assert forwarder.ledger.work_order_for("open-alert") == 4242
        assert forwarder.ledger.is_done("open-alert:activated")
        assert not forwarder.ledger.is_done("old-event")  # what is old is still pruned
        await forwarder.close()
