"""The outbox: a durable FIFO of alarm events on local disk, with leases and dead letters.

An item stays on disk until a forwarder confirms delivery (``ack``). ``lease`` hands items
out oldest first and remembers, in memory, who holds them until ``lease_s`` runs out, so a
crash (which forgets every lease) redelivers them — first, since they are the oldest.

Built on diskcache with :class:`~edge_agent.outbox.jsondisk.JsonOnlyDisk` (JSON only, never
pickle), SQLite ``synchronous=FULL`` and ``eviction_policy="none"``; the byte cap is ours.
A ``put`` that returned is on disk. One SQLite file holds queue items, dead letters, items
awaiting the hub, the id counter and small notes: :mod:`.records` describes the rows.

All calls block (an fsync per transaction); async code calls them via ``asyncio.to_thread``.
One ``Outbox`` per directory per process; it is thread-safe within that process. The
command line (``edge-agent outbox SITE retry|purge|recover``) may write the store while the
agent runs: every change is one SQLite transaction, ids come from the counter in the store,
and :meth:`Outbox.stats` counts depth, dead letters and bytes in the store (:mod:`.counts`).

Damage (see docs/outbox.md, "A damaged outbox"): :meth:`Outbox.open` checks the file first
(:mod:`.integrity`) and raises :class:`OutboxDamaged` rather than hand diskcache a broken
or tampered file. :meth:`Outbox.open_or_replace` (the agent's way in) then moves the
directory aside whole (:mod:`.aside`) and opens a fresh one. A row whose value cannot be
decoded, or has the wrong shape, becomes a dead letter with its reason and its raw bytes
(base64, never decoded). Damage found while running (SQLite reports corruption, or the
store hands back something no healthy store holds) sets the store aside the same way and
carries on with a fresh one, once a minute at most (:mod:`.core`); the calls of a stage
never see more than an :class:`OutboxError` (:mod:`.errors` translates in one place).

Where each job lives: opening and recovery of the file :mod:`.opening`; shared state,
queue reads and damage while running :mod:`.core`; puts and the cap :mod:`.enqueue`;
lease, ack, nack, dead-letter :mod:`.delivery`; dead letters :mod:`.dead_letters`; items
awaiting the hub :mod:`.awaiting`; stats and notes :mod:`.status`; salvaged rows
:mod:`.salvaged`. This module puts them together as :class:`Outbox`.
"""

from __future__ import annotations

import time
from pathlib import Path

from edge_agent.outbox.awaiting import AwaitingHub
from edge_agent.outbox.core import REPLACE_AT_MOST_EVERY_S
from edge_agent.outbox.dead_letters import DeadLetters
from edge_agent.outbox.delivery import Delivery
from edge_agent.outbox.enqueue import Enqueue
from edge_agent.outbox.errors import (
    OutboxCorrupt,
    OutboxDamaged,
    OutboxError,
    OutboxFull,
    PayloadRejected,
    PayloadTooLarge,
    opening_errors,
)
from edge_agent.outbox.integrity import DB_NAME, highest_id
from edge_agent.outbox.opening import open_cache, set_aside_logged
from edge_agent.outbox.records import (
    FIRST_ID,
    MAX_PAYLOAD_BYTES,
    RAW_KEEP_BYTES,
    AwaitingItem,
    AwaitingStats,
    DeadLetter,
    OutboxStats,
)
from edge_agent.outbox.salvaged import SalvagedRows
from edge_agent.outbox.status import Status

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "RAW_KEEP_BYTES",
    "REPLACE_AT_MOST_EVERY_S",
    "AwaitingItem",
    "AwaitingStats",
    "DeadLetter",
    "Outbox",
    "OutboxCorrupt",
    "OutboxDamaged",
    "OutboxError",
    "OutboxFull",
    "OutboxStats",
    "PayloadRejected",
    "PayloadTooLarge",
]


class Outbox(Enqueue, Delivery, DeadLetters, AwaitingHub, Status, SalvagedRows):
    """A durable FIFO with leases, acks, nacks and a dead-letter queue. See the module doc."""

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def open(
        cls, directory: Path, max_bytes: int, lease_s: float = 60.0, first_id: int = FIRST_ID
    ) -> Outbox:
        """Open (or create, mode 0700) the outbox in ``directory``. Raises
        :class:`OutboxDamaged` for a file that must be set aside rather than opened.
        ``first_id``: a new store hands out ids from here (above a store it replaces)."""
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        directory = Path(directory)
        cache = open_cache(directory)
        try:
            with opening_errors(directory, "cannot read"):
                outbox = cls(cache, directory, max_bytes, lease_s)
                outbox._raise_counter(first_id - 1)
        except OutboxError:
            cache.close()
            raise
        return outbox

    @classmethod
    def open_or_replace(cls, directory: Path, max_bytes: int, lease_s: float = 60.0) -> Outbox:
        """The agent's way in: :meth:`open`, and if the store is damaged, move it aside
        whole (``<name>.damaged-<time>``, never deleted) and open a fresh one. The returned
        outbox also replaces itself when damage shows while running."""
        directory = Path(directory)
        try:
            outbox = cls.open(directory, max_bytes, lease_s)
        except OutboxDamaged as exc:
            aside = set_aside_logged(directory, exc, "start")
            outbox = cls.open(
                directory, max_bytes, lease_s, first_id=highest_id(aside / DB_NAME) + 1
            )
            outbox._replaced = 1
            outbox._replaced_at = time.monotonic()
        outbox.replace_when_damaged = True
        return outbox

    def close(self) -> None:
        """Close the store. Leases are forgotten: their items are redelivered next time."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._leases.clear()
                self._cache.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
