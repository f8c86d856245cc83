"""The outbox's SQLite write-ahead log stays small and counts against the cap (issue 17 §2).
Found on main: after a burst the ``cache.db-wal`` file kept its largest size (~4 MB) for
ever, on a disk the cap was meant to protect, and was counted nowhere."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge_agent.common.sqlite_wal import WAL_TRUNCATE_BYTES, wal_bytes
from edge_agent.outbox import Outbox, OutboxFull

PAD = "x" * 1000


def test_the_wal_is_truncated_after_a_drain_and_bounded_during_a_burst(tmp_path: Path) -> None:
    database = tmp_path / "outbox" / "cache.db"
    with Outbox.open(tmp_path / "outbox", max_bytes=100_000_000) as outbox:
        largest = 0
        for batch in range(30):  # ≈ 3 MB of events
            outbox.put_many([{"n": batch, "k": k, "pad": PAD} for k in range(100)])
            largest = max(largest, wal_bytes(database))
        # Bounded: truncated whenever a write left it past the bound.
        assert largest <= WAL_TRUNCATE_BYTES + 512 * 1024
        while items := outbox.lease(500):
            outbox.ack([item.id for item in items])
        assert wal_bytes(database) == 0  # drained: nothing kept
        assert outbox.stats().wal_bytes == 0


def test_a_wal_that_cannot_be_truncated_counts_against_the_cap(tmp_path: Path) -> None:
    database = tmp_path / "outbox" / "cache.db"
    with Outbox.open(tmp_path / "outbox", max_bytes=60_000) as outbox:
        outbox.put({"n": 0, "pad": PAD})
        # A reader (another process's `outbox status`, say) holds the WAL open.
        reader = sqlite3.connect(database, isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM Cache").fetchone()
            for n in range(1, 40):
                outbox.put({"n": n, "pad": PAD})
                if wal_bytes(database) + outbox.stats().bytes > 60_000:
                    break
            # The JSON alone would fit; with the WAL it does not.
            assert outbox.stats().bytes + 2_000 < 60_000
            with pytest.raises(OutboxFull):
                outbox.put({"n": 99, "pad": PAD})
            reader.execute("COMMIT")
        finally:
            reader.close()
        # The reader gone: the WAL is truncated and the event fits.
        outbox.put({"n": 99, "pad": PAD})
        assert outbox.stats().wal_bytes < 60_000
