"""Issue 10 §3: a damaged outbox is set aside (never deleted) and replaced at start and
while running; an undecodable row becomes a dead letter with its raw bytes; nothing raises
past :class:`OutboxError` and nothing unpickles."""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.outbox import Outbox, OutboxCorrupt
from edge_agent.outbox.aside import DAMAGE_NOTE
from tests.outbox.test_tamper import MODE_PICKLE, malicious_pickle

CAP = 10_000_000


def filled(directory: Path, count: int = 5) -> list[int]:
    with Outbox.open(directory, CAP) as outbox:
        return outbox.put_many([{"event_id": f"ev-{n}", "n": n} for n in range(count)])


def sql(directory: Path, statement: str, *params: object) -> None:
    with sqlite3.connect(directory / "cache.db") as db:
        db.execute(statement, params)


def garbage(directory: Path) -> None:
    (directory / "cache.db").write_bytes(b"\x00not a database\xff" * 500)


def truncated(directory: Path) -> None:
    path = directory / "cache.db"
    with Outbox.open(directory, CAP) as outbox:  # a checkpointed file, then cut in half
        outbox.put_many([{"pad": "x" * 3000} for _ in range(20)])
    sql(directory, "PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def settings_disk_kwarg(directory: Path) -> None:
    # diskcache passes every disk_* Settings row to Disk(): a raw TypeError before the fix.
    sql(directory, "INSERT INTO Settings VALUES ('disk_surprise', 1)")


def settings_size_text(directory: Path) -> None:
    sql(directory, "UPDATE Settings SET value = 'lots' WHERE key = 'size'")


def settings_pragma(directory: Path) -> None:
    sql(directory, "INSERT INTO Settings VALUES ('sqlite_writable_schema', 1)")


def counter_text(directory: Path) -> None:
    sql(directory, "UPDATE Cache SET value = ? WHERE key = 'meta:next-id'", b'"seven"')


def pickled_key(directory: Path) -> None:
    sql(
        directory,
        "INSERT INTO Cache(key, raw, store_time, access_time, size, mode, value)"
        " VALUES (?, 0, 0, 0, 0, 1, ?)",
        malicious_pickle(directory.parent / "pwned"),
        b"{}",
    )


def emptied(directory: Path) -> None:
    (directory / "cache.db").write_bytes(b"")


DAMAGES: dict[str, Callable[[Path], None]] = {
    "emptied": emptied,
    "garbage": garbage,
    "truncated": truncated,
    "settings-disk-kwarg": settings_disk_kwarg,
    "settings-size-text": settings_size_text,
    "settings-unknown-pragma": settings_pragma,
    "counter-text": counter_text,
    "pickled-key": pickled_key,
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_outbox_is_set_aside_at_start_and_a_fresh_one_works(
    damage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "outbox"
    filled(directory)
    DAMAGES[damage](directory)
    with pytest.raises(OutboxCorrupt):  # the plain open (the CLI's) refuses it
        Outbox.open(directory, CAP)
    damaged_bytes = (directory / "cache.db").read_bytes()

    with caplog.at_level(logging.ERROR), Outbox.open_or_replace(directory, CAP) as outbox:
        (aside,) = tmp_path.glob("outbox.damaged-*")
        assert (aside / "cache.db").read_bytes() == damaged_bytes  # kept whole
        assert json.loads((aside / DAMAGE_NOTE).read_text())["reason"]
        stats = outbox.stats()
        assert stats.damaged == (aside.name,)
        assert stats.replaced == 1
        new_ids = outbox.put_many([{"event_id": "new-1"}, {"event_id": "new-2"}])
        assert [i.payload["event_id"] for i in outbox.lease(10)] == ["new-1", "new-2"]
        assert min(new_ids) > 0
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert any("set aside" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "pwned").exists()


def test_fresh_outbox_ids_continue_above_the_damaged_ones(tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    old_ids = filled(directory)
    settings_size_text(directory)
    with Outbox.open_or_replace(directory, CAP) as outbox:
        assert outbox.put({"event_id": "new"}) > max(old_ids)


def row(directory: Path, item_id: int, value: object, mode: int = 1) -> None:
    sql(directory, "UPDATE Cache SET value = ?, mode = ? WHERE key = ?", value, mode, item_id)


BAD_ROWS: dict[str, tuple[object, int]] = {
    "nested-json": (b"[" * 100_000 + b"]" * 100_000, 1),
    "nested-under-the-limit-of-json": (b'{"p":' * 200 + b"{}" + b"}" * 200, 1),
    "wrong-shape-attempts": (b'{"p":{},"t":1.0,"a":"many","e":null}', 1),
    "wrong-shape-list": (b"[1,2,3]", 1),
    "not-json": (b"\xff\xfe{{", 1),
    "json-null": (b"null", 1),
    "text-not-bytes": ("{}", 1),
    "pickle": (None, MODE_PICKLE),
}


@pytest.mark.parametrize("bad", sorted(BAD_ROWS))
def test_undecodable_row_becomes_a_dead_letter_and_the_queue_flows(
    bad: str, tmp_path: Path
) -> None:
    directory = tmp_path / "outbox"
    ids = filled(directory)
    value, mode = BAD_ROWS[bad]
    if value is None:
        value = malicious_pickle(tmp_path / "pwned")
    row(directory, ids[2], value, mode)

    with Outbox.open_or_replace(directory, CAP) as outbox:
        leased = outbox.lease(10)
        assert [i.id for i in leased] == [ids[0], ids[1], ids[3], ids[4]]
        outbox.ack(i.id for i in leased)
        (letter,) = outbox.dead_letters()
        assert letter.id == ids[2]
        assert letter.reason.startswith("refused stored row")
        assert letter.raw is not None
        kept = base64.b64decode(letter.raw["b64"])
        stored = value if isinstance(value, bytes) else str(value).encode()
        assert stored.startswith(kept)
        assert outbox.stats().quarantined == 1
        assert outbox.stats().damaged == ()  # a bad row is not a bad store
    assert not (tmp_path / "pwned").exists()


def test_payload_nested_too_deep_is_rejected_at_put(outbox: Outbox) -> None:
    from edge_agent.outbox import PayloadRejected

    deep: dict[str, object] = {}
    for _ in range(5000):
        deep = {"d": deep}
    with pytest.raises(PayloadRejected):
        outbox.put(deep)
    assert outbox.put({"ok": True}) > 0


def test_damage_while_running_sets_aside_and_carries_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "outbox"
    with Outbox.open_or_replace(directory, CAP) as outbox:
        old = outbox.put_many([{"event_id": f"old-{n}"} for n in range(3)])
        outbox.lease(1)
        counter_text(directory)  # tampered under the running agent
        with caplog.at_level(logging.ERROR):
            new = outbox.put({"event_id": "after"})  # the alarm is not lost
        assert new > max(old)
        assert [i.payload["event_id"] for i in outbox.lease(10)] == ["after"]
        outbox.ack(old)  # acks of items of the old store: nothing left to act on
        (aside,) = tmp_path.glob("outbox.damaged-*")
        assert outbox.stats().damaged == (aside.name,)
    assert any("set aside" in r.getMessage() for r in caplog.records)


def test_file_damage_seen_by_a_new_connection_while_running(tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    with Outbox.open_or_replace(directory, CAP) as outbox:
        outbox.put_many([{"n": n} for n in range(50)])
        sql(directory, "PRAGMA wal_checkpoint(TRUNCATE)")  # the rows now live in cache.db
        garbage(directory)
        # diskcache opens one connection per thread: a worker thread sees the new bytes.
        result: list[object] = []
        worker = threading.Thread(target=lambda: result.append(outbox.lease(5)))
        worker.start()
        worker.join(30)
        assert result == [[]]  # a fresh, empty store; the old one waits for recover
        assert len(outbox.stats().damaged) == 1
        assert outbox.put({"n": "new"}) > 50


def test_damage_again_within_a_minute_is_an_outbox_error_not_a_new_copy(tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    filled(directory)
    garbage(directory)
    with Outbox.open_or_replace(directory, CAP) as outbox:
        outbox.put({"n": 0})
        counter_text(directory)
        with pytest.raises(OutboxCorrupt):
            outbox.put({"n": 1})
    assert len(list(tmp_path.glob("outbox.damaged-*"))) == 1


def test_a_plain_open_never_replaces_while_running(tmp_path: Path) -> None:
    # The CLI opens the same directory as the running agent: it must not move it away.
    directory = tmp_path / "outbox"
    with Outbox.open(directory, CAP) as outbox:
        outbox.put({"n": 1})
        counter_text(directory)
        with pytest.raises(OutboxCorrupt):
            outbox.put({"n": 2})
    assert list(tmp_path.glob("outbox.damaged-*")) == []


def test_a_callers_bug_is_not_taken_for_damage(tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    with Outbox.open_or_replace(directory, CAP) as outbox:
        item_id = outbox.put({"n": 1})
        with pytest.raises(TypeError):
            outbox.ack(None)  # type: ignore[arg-type]
        assert [i.id for i in outbox.lease(5)] == [item_id]
    assert list(tmp_path.glob("outbox.damaged-*")) == []


def test_a_header_byte_sqlite_refuses_is_damage_not_a_failed_start(tmp_path: Path) -> None:
    """Found by the fault suite: 0x05 at offset 47 (the schema format number) makes SQLite
    answer "unsupported file format", a plain SQLITE_ERROR that was taken for "cannot check
    now", so the outbox could not open at all (a crash loop at start)."""
    directory = tmp_path / "outbox"
    with Outbox.open(directory, 1_000_000) as outbox:
        outbox.put_many([{"n": 1}])
    database = directory / "cache.db"
    data = bytearray(database.read_bytes())
    data[47] = 0x05
    database.write_bytes(bytes(data))
    outbox = Outbox.open_or_replace(directory, 1_000_000)
    try:
        outbox.put_many([{"n": 2}])
        assert [item.payload for item in outbox.peek(10)] == [{"n": 2}]
        assert outbox.stats().damaged
    finally:
        outbox.close()
