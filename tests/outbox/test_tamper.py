"""CVE-2025-69872: a row marked as pickle in the SQLite file must be refused, never run."""

from __future__ import annotations

import logging
import pathlib
import pickle
import sqlite3
from pathlib import Path

import pytest

from edge_agent.outbox import Outbox, OutboxCorrupt

MODE_PICKLE = 4  # diskcache.core.MODE_PICKLE


class _TouchOnLoad:
    """Unpickling this creates ``path``: the proof that a pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def malicious_pickle(marker: Path) -> bytes:
    return pickle.dumps(_TouchOnLoad(marker), protocol=4)


def test_the_payload_really_runs_when_unpickled(tmp_path: Path) -> None:
    # Control: the bytes used below do execute under plain pickle.
    marker = tmp_path / "control-ran"
    pickle.loads(malicious_pickle(marker))
    assert marker.exists()


def test_tampered_value_row_is_refused_not_executed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "outbox"
    marker = tmp_path / "pwned"
    with Outbox.open(directory, 1_000_000) as outbox:
        first, victim, last = outbox.put_many([{"n": 0}, {"n": 1}, {"n": 2}])
    with sqlite3.connect(directory / "cache.db") as db:
        changed = db.execute(
            "UPDATE Cache SET mode = ?, value = ? WHERE key = ? AND raw = 1",
            (MODE_PICKLE, malicious_pickle(marker), victim),
        ).rowcount
    assert changed == 1

    with caplog.at_level(logging.ERROR), Outbox.open(directory, 1_000_000) as outbox:
        items = outbox.lease(10)
        # The tampered row is skipped (and quarantined), the others still flow, in order.
        assert [i.id for i in items] == [first, last]
        dead = outbox.dead_letters()
        assert [d.id for d in dead] == [victim]
        assert "pickle" in dead[0].reason
        assert outbox.retry_dead() == 0  # nothing decodable to retry
        assert outbox.stats().depth == 2
    assert not marker.exists()
    assert any("refused" in r.getMessage() for r in caplog.records)


def test_tampered_key_row_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    marker = tmp_path / "pwned-key"
    with Outbox.open(directory, 1_000_000) as outbox:
        outbox.put({"n": 0})
    with sqlite3.connect(directory / "cache.db") as db:
        db.execute(
            "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count,"
            " tag, size, mode, filename, value) VALUES (?, 0, 0, NULL, 0, 0, NULL, 0, 1, NULL, ?)",
            (malicious_pickle(marker), b"{}"),
        )
    with pytest.raises(OutboxCorrupt):
        Outbox.open(directory, 1_000_000)
    assert not marker.exists()
