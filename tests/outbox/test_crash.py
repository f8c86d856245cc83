"""SIGKILL at random moments while a process puts and acks in a loop: nothing returned by
``put`` is lost, nothing acked comes back, SQLite's integrity check passes and the store
always opens."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import random
import signal
import sqlite3
import time
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from edge_agent.outbox import Outbox

KILLS = 200
CAP = 100_000_000


def _child(directory: Path, conn: Connection, seed: int) -> None:
    """Put and ack in a loop, reporting each step on the pipe; never returns."""
    rng = random.Random(seed)
    outbox = Outbox.open(directory, CAP)

    def say(text: str) -> None:
        conn.send_bytes(text.encode())

    say("ready")
    serial = 0
    while True:
        roll = rng.random()
        if roll < 0.5:
            serial += 1
            item_id = outbox.put({"seed": seed, "serial": serial})
            say(f"P {item_id} {seed} {serial}")
        elif roll < 0.6:
            payloads = [{"seed": seed, "serial": serial + k + 1} for k in range(5)]
            ids = outbox.put_many(payloads)
            serial += 5
            for item_id, payload in zip(ids, payloads, strict=True):
                say(f"P {item_id} {seed} {payload['serial']}")
        else:
            items = outbox.lease(rng.randint(1, 4))
            if not items:
                continue
            ids = [item.id for item in items]
            line = " ".join(map(str, ids))
            say(f"a {line}")  # about to ack: may or may not land
            if rng.random() < 0.2:
                outbox.nack(ids, reason="retry")
                say(f"n {line}")
            else:
                outbox.ack(ids)
                say(f"A {line}")


@pytest.fixture(scope="module")
def spawner() -> multiprocessing.context.BaseContext:
    # A fork server: a clean single-threaded process forks the children quickly, whatever
    # threads the test process runs (forking pytest itself could copy a held lock).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["edge_agent.outbox", "tests.outbox.test_crash"])
    return context


def _run_and_kill(
    spawner: multiprocessing.context.BaseContext, directory: Path, seed: int, rng: random.Random
) -> list[str]:
    receiver, sender = spawner.Pipe(duplex=False)
    process = spawner.Process(target=_child, args=(directory, sender, seed), daemon=True)
    process.start()
    sender.close()
    lines: list[str] = []
    try:
        assert receiver.poll(20), "the child did not start"
        assert receiver.recv_bytes() == b"ready"
        time.sleep(rng.uniform(0.0, 0.06))  # a random moment inside the loop
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)
        while True:
            try:
                lines.append(receiver.recv_bytes().decode())
            except EOFError:
                break
    finally:
        receiver.close()
        process.close()
    return lines


def test_sigkill_loses_nothing_that_put_returned(
    tmp_path: Path, spawner: multiprocessing.context.BaseContext
) -> None:
    directory = tmp_path / "outbox"
    rng = random.Random(5)
    stored: dict[int, tuple[int, int]] = {}  # id -> (seed, serial), put returned
    maybe_acked: set[int] = set()
    surely_acked: set[int] = set()
    total_puts = 0
    for seed in range(KILLS):
        lines = _run_and_kill(spawner, directory, seed, rng)
        for line in lines:
            kind, *fields = line.split()
            if kind == "P":
                item_id, item_seed, serial = map(int, fields)
                stored[item_id] = (item_seed, serial)
                total_puts += 1
            elif kind == "a":
                maybe_acked.update(map(int, fields))
            elif kind == "A":
                surely_acked.update(map(int, fields))
            elif kind == "n":
                maybe_acked.difference_update(map(int, fields))

        with sqlite3.connect(directory / "cache.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        db.close()
        with Outbox.open(directory, CAP) as outbox:
            present = {item.id: dict(item.payload) for item in outbox.lease(1_000_000)}
            stats = outbox.stats()
            assert stats.depth == len(present)
            assert outbox.dead_letters() == []
        for item_id, (item_seed, serial) in stored.items():
            if item_id in surely_acked:
                assert item_id not in present, f"acked item {item_id} came back"
            elif item_id not in maybe_acked:
                assert item_id in present, f"item {item_id} was lost after kill {seed}"
                assert present[item_id] == {"seed": item_seed, "serial": serial}
        # Nothing appears that nobody put. A put cut short between its commit and its
        # report may exist: it comes from this round's child; adopt it from now on.
        for item_id, payload in present.items():
            if item_id not in stored:
                assert payload["seed"] == seed
                stored[item_id] = (payload["seed"], payload["serial"])
        # Ids stay in put order: FIFO survives.
        assert list(present) == sorted(present)
    assert total_puts > KILLS  # the kills really landed mid-loop
    assert surely_acked
