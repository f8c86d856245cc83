"""Hypothesis: random put/lease/ack/nack/restart sequences against a plain-list model."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from edge_agent.outbox import Outbox


class OutboxModel(RuleBasedStateMachine):
    """The model: a list of [id, n, attempts] in FIFO order, and the set of leased ids."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="outbox-model-"))
        self.outbox = Outbox.open(self.directory / "ob", 50_000_000)
        self.queue: list[list[int]] = []
        self.leased: set[int] = set()
        self.counter = 0

    def teardown(self) -> None:
        self.outbox.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    @rule(count=st.integers(min_value=1, max_value=5), batched=st.booleans())
    def put(self, count: int, batched: bool) -> None:
        payloads = [{"n": self.counter + i} for i in range(count)]
        if batched:
            ids = self.outbox.put_many(payloads)
        else:
            ids = [self.outbox.put(p) for p in payloads]
        for item_id, payload in zip(ids, payloads, strict=True):
            self.queue.append([item_id, payload["n"], 0])
        self.counter += count

    @rule(n=st.integers(min_value=1, max_value=8))
    def lease(self, n: int) -> None:
        expected = [entry for entry in self.queue if entry[0] not in self.leased][:n]
        got = self.outbox.lease(n)
        assert [(i.id, i.payload["n"], i.attempts) for i in got] == [tuple(e) for e in expected]
        self.leased.update(i.id for i in got)

    @precondition(lambda self: bool(self.leased))
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        chosen = data.draw(st.sets(st.sampled_from(sorted(self.leased)), min_size=1))
        self.outbox.ack(chosen)
        self.queue = [e for e in self.queue if e[0] not in chosen]
        self.leased -= chosen

    @precondition(lambda self: bool(self.leased))
    @rule(data=st.data())
    def nack(self, data: st.DataObject) -> None:
        chosen = data.draw(st.sets(st.sampled_from(sorted(self.leased)), min_size=1))
        self.outbox.nack(chosen, reason="test")
        for entry in self.queue:
            if entry[0] in chosen:
                entry[2] += 1
        self.leased -= chosen

    @rule()
    def restart(self) -> None:
        self.outbox.close()
        self.outbox = Outbox.open(self.directory / "ob", 50_000_000)
        self.leased.clear()

    @invariant()
    def depth_matches(self) -> None:
        stats = self.outbox.stats()
        assert stats.depth == len(self.queue)
        assert stats.leased == len(self.leased)


OutboxModel.TestCase.settings = settings(max_examples=50, stateful_step_count=25, deadline=None)
test_outbox_matches_model = OutboxModel.TestCase
