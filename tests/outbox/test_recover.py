"""`edge-agent outbox SITE recover`: every readable row of a set-aside outbox back in the
live one, in order, once, beside a running agent; what could not be read is reported."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.outbox import Outbox, OutboxError, salvage
from edge_agent.outbox.aside import RECOVERED_NOTE
from tests.outbox.test_tamper import MODE_PICKLE, malicious_pickle

CAP = 10_000_000


def damaged_state(state: Path, count: int = 8) -> list[int]:
    """An outbox of ``count`` events and one dead letter, with a tampered Settings row (the
    whole file is refused) and one pickled row."""
    directory = state / "outbox"
    with Outbox.open(directory, CAP) as outbox:
        ids = outbox.put_many([{"event_id": f"old-{n}"} for n in range(count)])
        outbox.lease(1)
        outbox.dead_letter(ids[0], "MaintainX 400")
    with sqlite3.connect(directory / "cache.db") as db:
        db.execute(
            "UPDATE Cache SET mode = ?, value = ? WHERE key = ?",
            (MODE_PICKLE, malicious_pickle(state / "pwned"), ids[3]),
        )
        # Last: diskcache's triggers would rewrite the size on the update above.
        db.execute("UPDATE Settings SET value = 'lots' WHERE key = 'size'")
    return ids


def test_recover_salvages_every_readable_row_in_order_once(tmp_path: Path) -> None:
    ids = damaged_state(tmp_path)
    directory = tmp_path / "outbox"
    with Outbox.open_or_replace(directory, CAP) as agent_outbox:
        agent_outbox.put({"event_id": "new-1"})  # the agent runs on meanwhile
        (aside,) = tmp_path.glob("outbox.damaged-*")
        assert agent_outbox.stats().damaged == (aside.name,)

        with Outbox.open(directory, CAP) as cli_outbox:  # another process's view
            (report,) = salvage.recover(cli_outbox)
        assert report.queued == 6  # 8 put, 1 dead-lettered, 1 pickled
        assert report.dead == 1
        assert any(f"key {ids[3]}" in line and "pickle" in line for line in report.unreadable)

        stats = agent_outbox.stats()  # the running agent notices, and counts the rows
        assert stats.damaged == ()
        assert stats.depth == 7
        events = [i.payload["event_id"] for i in agent_outbox.lease(20)]
        assert events == ["new-1"] + [f"old-{n}" for n in (1, 2, 4, 5, 6, 7)]
        (letter,) = agent_outbox.dead_letters()
        assert letter.payload == {"event_id": "old-0"}
        assert letter.reason == f"salvaged from {aside.name}: MaintainX 400"

        with Outbox.open(directory, CAP) as cli_outbox:
            assert salvage.recover(cli_outbox) == []  # done: nothing twice
    assert (aside / RECOVERED_NOTE).exists()
    assert (aside / "cache.db").exists()  # kept, never deleted
    assert not (tmp_path / "pwned").exists()


def test_interrupted_recover_resumes_without_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    damaged_state(tmp_path, count=30)
    directory = tmp_path / "outbox"
    Outbox.open_or_replace(directory, CAP).close()
    monkeypatch.setattr(salvage, "BATCH_ROWS", 4)
    real_import = Outbox.import_salvaged
    calls = 0

    def failing_third_batch(self: Outbox, *args: object) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OutboxError("the disk went away")
        return real_import(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Outbox, "import_salvaged", failing_third_batch)
    with Outbox.open(directory, CAP) as outbox, pytest.raises(OutboxError):
        salvage.recover(outbox)
    monkeypatch.setattr(Outbox, "import_salvaged", real_import)
    with Outbox.open(directory, CAP) as outbox:
        (report,) = salvage.recover(outbox)
        assert report.already_imported == 8
        events = [i.payload["event_id"] for i in outbox.peek(100)]
    assert events == [f"old-{n}" for n in range(1, 30) if n != 3]


def test_a_second_recover_at_the_same_time_is_refused(tmp_path: Path) -> None:
    damaged_state(tmp_path)
    directory = tmp_path / "outbox"
    Outbox.open_or_replace(directory, CAP).close()
    (aside,) = tmp_path.glob("outbox.damaged-*")
    with salvage._exclusive(aside / "recover.lock"), Outbox.open(directory, CAP) as outbox:
        with pytest.raises(salvage.RecoverBusy):
            salvage.recover(outbox)


def test_recover_of_an_unreadable_file_reports_it_and_clears_the_reason(tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    with Outbox.open(directory, CAP) as outbox:
        outbox.put({"event_id": "lost"})
    (directory / "cache.db").write_bytes(b"garbage" * 1000)
    for extra in ("cache.db-wal", "cache.db-shm"):
        (directory / extra).unlink(missing_ok=True)
    with Outbox.open_or_replace(directory, CAP) as outbox:
        (report,) = salvage.recover(outbox)
        assert report.queued == 0
        assert report.unreadable
        assert outbox.stats().damaged == ()


def test_recover_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    site = tmp_path / "site.yaml"
    site.write_text(f"version: 1\nsite:\n  id: plant-a\nstorage:\n  path: {state}\n")
    damaged_state(state)
    Outbox.open_or_replace(state / "outbox", CAP).close()

    assert main(["outbox", str(site), "recover", "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["queued"] == 6
    assert report["dead"] == 1
    assert len(report["unreadable"]) == 1
    assert main(["outbox", str(site), "recover"]) == 0
    assert "no damaged outbox awaits recovery" in capsys.readouterr().out
    assert main(["outbox", str(site), "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["depth"] == 6


def test_recover_beside_an_agent_writing_the_same_outbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The agent's puts and recover's batches interleave: every event once, each stream in
    # its own order, no id handed out twice.
    damaged_state(tmp_path, count=400)
    directory = tmp_path / "outbox"
    monkeypatch.setattr(salvage, "BATCH_ROWS", 25)
    with Outbox.open_or_replace(directory, CAP) as agent_outbox:
        stop = threading.Event()
        put_ids: list[int] = []

        def agent_puts() -> None:
            for n in range(300):
                put_ids.append(agent_outbox.put({"event_id": f"new-{n}"}))
                if stop.is_set() and n >= 20:
                    return

        writer = threading.Thread(target=agent_puts)
        writer.start()
        with Outbox.open(directory, CAP) as cli_outbox:
            (report,) = salvage.recover(cli_outbox)
        stop.set()
        writer.join(60)
        assert not writer.is_alive()
        items = agent_outbox.peek(10_000)
    ids = [item.id for item in items]
    events = [str(item.payload["event_id"]) for item in items]
    assert len(ids) == len(set(ids))
    assert set(put_ids) <= set(ids)
    old = [e for e in events if e.startswith("old-")]
    new = [e for e in events if e.startswith("new-")]
    assert old == [f"old-{n}" for n in range(1, 400) if n != 3]
    assert new == [f"new-{n}" for n in range(len(put_ids))]
    assert report.queued == len(old)
