"""The outbox written by two processes at once: the agent (puts, leases, acks, nacks, dead
letters) and ``edge-agent outbox SITE retry|purge`` from the command line. Each handle has
its own SQLite connection, as each process does. Invariants after every step, in any
interleaving: both handles' ``stats()`` show the store's true depth, dead letters and bytes,
never a negative count (on main a retry from the command line made the agent's depth -1
for good), and a put refused for the cap fails only with ``OutboxFull``."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.outbox import Outbox, OutboxFull

CAP = 6_000  # about eight events: puts are refused now and then
EXAMPLES = 15

AGENT_STEPS = ("put", "lease_ack", "lease_nack", "dead_letter")
CLI_STEPS = ("retry", "purge", "put")


def truth(directory: Path) -> tuple[int, int]:
    """Queue rows and dead letters, counted by the standard module in the file itself."""
    connection = sqlite3.connect(directory / "cache.db")
    try:
        (queued,) = connection.execute(
            "SELECT count(*) FROM Cache WHERE typeof(key) = 'integer'"
        ).fetchone()
        (dead,) = connection.execute(
            "SELECT count(*) FROM Cache WHERE typeof(key) = 'text' AND key LIKE 'dead:%'"
        ).fetchone()
    finally:
        connection.close()
    return int(queued), int(dead)


def step(outbox: Outbox, action: str, n: int) -> None:
    if action == "put":
        try:
            outbox.put_many([{"event_id": f"ev-{n}-{i}", "pad": "x" * 500} for i in range(n)])
        except OutboxFull:
            pass  # the cap: the only refusal a put may give
    elif action in ("lease_ack", "lease_nack", "dead_letter"):
        items = outbox.lease(n)
        ids = [item.id for item in items]
        if action == "lease_ack":
            outbox.ack(ids)
        elif action == "lease_nack":
            outbox.nack(ids, "MaintainX HTTP 503")
        else:
            for item_id in ids:
                outbox.dead_letter(item_id, "MaintainX HTTP 400: Asset not found")
    elif action == "retry":
        outbox.retry_dead()
    else:
        outbox.purge()


steps = st.lists(
    st.one_of(
        st.tuples(st.just("agent"), st.sampled_from(AGENT_STEPS), st.integers(1, 3)),
        st.tuples(st.just("cli"), st.sampled_from(CLI_STEPS), st.integers(1, 3)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(script=steps)
def test_two_writers_never_make_the_counts_drift(script: list[tuple[str, str, int]]) -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        agent = Outbox.open_or_replace(directory, CAP)
        cli = Outbox.open(directory, CAP)
        handles: dict[str, Any] = {"agent": agent, "cli": cli}
        try:
            for who, action, n in script:
                step(handles[who], action, n)
                queued, dead = truth(directory)
                for outbox in (agent, cli):
                    stats = outbox.stats()
                    assert (stats.depth, stats.dead) == (queued, dead)
                    assert stats.depth >= 0 and stats.dead >= 0
                assert agent.stats().bytes == cli.stats().bytes >= 0
        finally:
            cli.close()
            agent.close()


def test_room_made_by_a_purge_from_the_command_line_is_used_at_once() -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        agent = Outbox.open_or_replace(directory, CAP)
        cli = Outbox.open(directory, CAP)
        try:
            event = {"event_id": "ev", "pad": "x" * 500}
            stored = 0
            while stored < 100:  # bounded: fill up to the cap
                try:
                    agent.put(event)
                except OutboxFull:
                    break
                stored += 1
            assert 0 < stored < 100
            for item in agent.lease(stored):
                agent.dead_letter(item.id, "MaintainX HTTP 400: Asset not found")
            assert cli.purge() == stored  # the operator frees the room
            agent.put(event)  # on main: refused until the agent's next ack
            assert agent.stats().depth == 1
        finally:
            cli.close()
            agent.close()
