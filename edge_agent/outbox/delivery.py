"""Handing queued items to a forwarder and hearing back: lease, ack, nack, dead-letter.

``lease`` hands items out oldest first and remembers, in memory, who holds them until
``lease_s`` runs out, so a crash (which forgets every lease) redelivers them, first.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from edge_agent.interfaces import OutboxItem
from edge_agent.outbox.core import Lease, StoreCore, survives_damage
from edge_agent.outbox.counts import any_queued
from edge_agent.outbox.errors import store_errors
from edge_agent.outbox.jsondisk import UnsafeRowError
from edge_agent.outbox.logger import log
from edge_agent.outbox.records import dead_key, delete_rows, is_queue_record
from edge_agent.redaction import redact


class Delivery(StoreCore):
    """The calls of a forwarder's delivery loop, and ``peek`` for ``edge-agent outbox``."""

    @survives_damage(retry=True)
    def lease(self, n: int) -> list[OutboxItem]:
        """Up to ``n`` items, oldest first, that nobody holds an unexpired lease on."""
        if n <= 0:
            return []
        with self._lock:
            self._check_open()
            now = time.monotonic()
            leased: list[OutboxItem] = []
            with store_errors("lease failed", "the outbox holds a refused key"):
                for item_id in self._queue_ids():
                    held = self._leases.get(item_id)
                    if held is not None and held.deadline > now:
                        continue
                    row = self._read_queue_row(item_id)
                    if row is None:
                        continue
                    record, body = row
                    self._leases[item_id] = Lease(now + self.lease_s, record)
                    self._highest_id = max(self._highest_id, item_id)
                    # The stored bytes go out as they are: no second encoding per send.
                    leased.append(OutboxItem(item_id, record["p"], int(record["a"]), body=body))
                    if len(leased) >= n:
                        break
            return leased

    @survives_damage(retry=True)
    def peek(self, n: int) -> list[OutboxItem]:
        """Up to ``n`` queued items, oldest first, leased or not, without leasing them
        (for ``edge-agent outbox list``)."""
        with self._lock:
            self._check_open()
            items: list[OutboxItem] = []
            with store_errors("peek failed", "the outbox holds a refused row"):
                for item_id in self._queue_ids():
                    if len(items) >= n:
                        break
                    try:
                        record = self._cache.get(item_id)
                    except UnsafeRowError:
                        continue  # looking does not change the store; a lease dead-letters it
                    if is_queue_record(record):
                        items.append(
                            OutboxItem(id=item_id, payload=record["p"], attempts=record["a"])
                        )
            return items

    @survives_damage(retry=False)
    def ack(self, ids: Iterable[int]) -> None:
        """Delivered: remove these items (one transaction). Unknown ids are ignored."""
        wanted = list(ids)
        if not wanted:
            return
        with self._lock:
            self._check_open()
            with store_errors("ack failed"), self._cache.transact():
                delete_rows(self._cache, wanted)
            for item_id in wanted:
                self._leases.pop(item_id, None)
            self._refresh_bytes()
            self._keep_wal_small(drained=not any_queued(self._cache))

    def release(self, ids: Iterable[int]) -> None:
        """Give leases back untouched: no attempt counted, nothing written (for a lease
        its taker never used)."""
        with self._lock:
            for item_id in ids:
                self._leases.pop(item_id, None)

    @survives_damage(retry=False)
    def nack(self, ids: Iterable[int], reason: str | None = None) -> None:
        """Not delivered: release the leases and count an attempt; items keep their place."""
        wanted = list(ids)
        reason = redact(reason) if reason is not None else None  # it is written to disk
        if not wanted:
            return
        with self._lock:
            self._check_open()
            with store_errors("nack failed"), self._cache.transact():
                for item_id in wanted:
                    record = self._take_lease(item_id)
                    if record is None:
                        continue
                    record = {**record, "a": int(record["a"]) + 1, "e": reason}
                    # Cache.set on an existing key updates the row in place: same key,
                    # same place in the order.
                    if item_id in self._cache:
                        self._cache.set(item_id, record)
            self._refresh_bytes()

    @survives_damage(retry=False)
    def dead_letter(self, item_id: int, reason: str) -> None:
        """Move an item that can never be delivered to the dead letters, with ``reason``
        (secrets redacted: it is written to disk and shown by ``edge-agent outbox``)."""
        reason = redact(reason)
        with self._lock:
            self._check_open()
            with store_errors("dead-letter failed"), self._cache.transact():
                self._leases.pop(item_id, None)
                record = self._read_queue_record(item_id)
                if record is None:
                    log.warning(
                        "Dead-letter of an item that is not in the outbox ignored.",
                        extra={"item_id": item_id, "reason": reason},
                    )
                    return
                self._cache.delete(item_id)
                self._cache.set(
                    dead_key(item_id),
                    {
                        "p": record["p"],
                        "t": record["t"],
                        "a": record["a"],
                        "reason": reason,
                        "dead_t": time.time(),
                    },
                )
            self._refresh_bytes()
            log.warning(
                "Outbox item moved to the dead letters.",
                extra={"item_id": item_id, "reason": reason},
            )
