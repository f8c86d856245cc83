"""The outbox's contract: FIFO, leases, acks, nacks, dead letters, the cap, permissions."""

from __future__ import annotations

import logging
import stat
import threading
import time
from pathlib import Path

import pytest

from edge_agent.outbox import Outbox, OutboxError, OutboxFull, PayloadRejected, PayloadTooLarge


def wait_until(predicate, timeout_s: float = 5.0, step_s: float = 0.02) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(step_s)


def test_fifo_lease_ack(outbox: Outbox) -> None:
    ids = [outbox.put({"n": n}) for n in range(5)]
    assert ids == sorted(ids)
    first = outbox.lease(2)
    assert [item.payload["n"] for item in first] == [0, 1]
    # Leased items are skipped while their lease runs.
    second = outbox.lease(10)
    assert [item.payload["n"] for item in second] == [2, 3, 4]
    assert outbox.lease(10) == []
    outbox.ack([item.id for item in first])
    stats = outbox.stats()
    assert stats.depth == 3
    assert stats.leased == 3
    assert stats.oldest_age_s is not None and stats.oldest_age_s >= 0


def test_put_many_is_ordered_and_atomic(outbox: Outbox) -> None:
    ids = outbox.put_many([{"n": n} for n in range(100)])
    assert ids == list(range(ids[0], ids[0] + 100))
    assert [i.payload["n"] for i in outbox.lease(100)] == list(range(100))
    with pytest.raises(OutboxError):
        outbox.put_many([{"n": 1}, {"bad": object()}])
    assert outbox.stats().depth == 100


def test_nack_keeps_place_and_counts_attempts(outbox: Outbox) -> None:
    outbox.put_many([{"n": n} for n in range(3)])
    items = outbox.lease(3)
    outbox.nack([items[0].id], reason="broker down")
    again = outbox.lease(3)
    assert [i.payload["n"] for i in again] == [0]
    assert again[0].attempts == 1
    outbox.nack([i.id for i in items[1:]] + [again[0].id])
    assert [(i.payload["n"], i.attempts) for i in outbox.lease(3)] == [(0, 2), (1, 1), (2, 1)]


def test_lease_expires_and_redelivers_oldest_first(tmp_path: Path) -> None:
    # Long enough that the two leases below fall inside it even on a loaded machine.
    with Outbox.open(tmp_path / "ob", 1_000_000, lease_s=1.0) as outbox:
        outbox.put_many([{"n": n} for n in range(3)])
        held = outbox.lease(2)
        assert [i.payload["n"] for i in outbox.lease(5)] == [2]
        leased_again: list[int] = []

        def expired() -> bool:
            leased_again.extend(i.payload["n"] for i in outbox.lease(5))
            return bool(leased_again)

        wait_until(expired, timeout_s=20.0)
        assert leased_again[:2] == [0, 1]
        outbox.ack([i.id for i in held])
        assert outbox.stats().depth == 1


def test_restart_forgets_leases_and_keeps_items(tmp_path: Path) -> None:
    with Outbox.open(tmp_path / "ob", 1_000_000) as outbox:
        ids = outbox.put_many([{"n": n} for n in range(4)])
        outbox.lease(4)
        outbox.ack([ids[1]])
    with Outbox.open(tmp_path / "ob", 1_000_000) as outbox:
        # Events put after the restart queue behind everything from before it.
        outbox.put({"n": "new"})
        assert [i.payload["n"] for i in outbox.lease(3)] == [0, 2, 3]
        assert [i.payload["n"] for i in outbox.lease(10)] == ["new"]
        outbox.ack([i.id for i in outbox.peek(10) if i.payload["n"] == "new"])
        # Ids are never reused, even after everything was acked.
        outbox.ack([ids[0], ids[2], ids[3]])
    with Outbox.open(tmp_path / "ob", 1_000_000) as outbox:
        assert outbox.put({"n": 9}) > ids[-1]


def test_dead_letter_retry_purge(outbox: Outbox) -> None:
    outbox.put_many([{"n": n} for n in range(3)])
    items = outbox.lease(3)
    outbox.dead_letter(items[1].id, "400 Bad Request: title is required")
    dead = outbox.dead_letters()
    assert [(d.id, d.payload["n"], d.reason) for d in dead] == [
        (items[1].id, 1, "400 Bad Request: title is required")
    ]
    assert outbox.stats().dead == 1 and outbox.stats().depth == 2
    assert outbox.retry_dead() == 1
    assert outbox.dead_letters() == []
    outbox.ack([items[0].id, items[2].id])
    retried = outbox.lease(5)
    assert [(i.payload["n"], i.attempts) for i in retried] == [(1, 0)]
    outbox.dead_letter(retried[0].id, "still bad")
    outbox.put({"n": 4})
    outbox.dead_letter(outbox.lease(1)[0].id, "bad too")
    assert outbox.retry_dead(ids=[retried[0].id]) == 1
    assert outbox.purge() == 1
    stats = outbox.stats()
    assert (stats.depth, stats.dead) == (1, 0)


def test_dead_letter_of_missing_item_is_ignored(outbox: Outbox) -> None:
    outbox.dead_letter(12345, "nothing there")
    assert outbox.dead_letters() == []


def test_cap_refuses_loudly_and_keeps_everything(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Outbox.open(tmp_path / "ob", max_bytes=2_000) as outbox:
        stored: list[int] = []
        with caplog.at_level(logging.ERROR, logger="edge_agent.outbox.store"):
            with pytest.raises(OutboxFull):
                for n in range(1_000):
                    stored.append(outbox.put({"n": n, "pad": "x" * 50}))
        assert 10 < len(stored) < 100
        assert any("refused" in r.getMessage() for r in caplog.records)
        stats = outbox.stats()
        assert stats.refused == 1
        assert stats.refusing  # the health-degraded signal the service reads
        assert stats.depth == len(stored)
        assert stats.bytes <= stats.cap_bytes
        # Batches are all or nothing.
        with pytest.raises(OutboxFull):
            outbox.put_many([{"n": n, "pad": "x" * 50} for n in range(5)])
        assert outbox.stats().refused == 6
        items = outbox.lease(1_000)
        assert [i.payload["n"] for i in items] == list(range(len(stored)))
        # Room again once something is delivered.
        outbox.ack([items[0].id, items[1].id])
        outbox.put({"n": "after"})
        assert not outbox.stats().refusing


def test_payload_checks(outbox: Outbox) -> None:
    # Payloads that can never be stored are PayloadRejected, so that a caller rejects that
    # one alert instead of retrying it forever.
    with pytest.raises(PayloadRejected):
        outbox.put({"value": float("nan")})
    with pytest.raises(PayloadRejected):
        outbox.put(["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(PayloadTooLarge):
        outbox.put({"blob": "x" * 1_100_000})
    assert outbox.stats().depth == 0


def test_directory_is_private(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    with Outbox.open(loose, 1_000_000) as outbox:
        outbox.put({"n": 1})
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700
    with Outbox.open(tmp_path / "new" / "outbox", 1_000_000):
        pass
    assert stat.S_IMODE((tmp_path / "new" / "outbox").stat().st_mode) == 0o700
    for child in loose.iterdir():
        assert stat.S_IMODE(child.stat().st_mode) & 0o077 == 0


def test_closed_outbox_refuses(tmp_path: Path) -> None:
    outbox = Outbox.open(tmp_path / "ob", 1_000_000)
    outbox.close()
    with pytest.raises(OutboxError):
        outbox.put({"n": 1})


def test_sqlite_settings_on_every_connection(tmp_path: Path) -> None:
    """synchronous=FULL, WAL and no eviction, read back from SQLite itself — on the
    opening thread and on a worker thread (async callers use ``asyncio.to_thread``, and
    diskcache opens one connection per thread)."""
    with Outbox.open(tmp_path / "ob", 1_000_000) as outbox:
        outbox.put({"n": 1})
        cache = outbox._cache

        def pragmas() -> tuple[int, str]:
            con = cache._con  # the connection diskcache itself uses on this thread
            (sync,) = con.execute("PRAGMA synchronous").fetchone()
            (journal,) = con.execute("PRAGMA journal_mode").fetchone()
            return int(sync), str(journal)

        assert pragmas() == (2, "wal")  # 2 = FULL
        seen: list[tuple[int, str]] = []
        worker = threading.Thread(target=lambda: seen.append(pragmas()))
        worker.start()
        worker.join(10)
        assert seen == [(2, "wal")]
        assert cache.eviction_policy == "none"
    # A second open (the next start) keeps them.
    with Outbox.open(tmp_path / "ob", 1_000_000) as outbox:
        (sync,) = outbox._cache._con.execute("PRAGMA synchronous").fetchone()
        assert sync == 2
