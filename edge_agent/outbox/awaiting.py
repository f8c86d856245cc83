"""Items sent and awaiting the hub's confirmation.

An item the broker acknowledged is not delivered yet when the hub must confirm it: it
moves from its queue key to ``"await:<20-digit id>"`` (a text key, so ``lease`` never
hands it out again) with the times it was sent, until the hub's result confirms it
(``confirm_awaiting``), rejects it (``dead_letter_awaiting``) or a forwarder in broker
mode puts it back in the queue (``requeue_awaiting``). The original id is kept: resends
and requeues keep the original order.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from edge_agent.outbox.core import StoreCore, survives_damage
from edge_agent.outbox.counts import prefixed_rows
from edge_agent.outbox.errors import store_errors
from edge_agent.outbox.logger import log
from edge_agent.outbox.records import (
    AWAIT_PREFIX,
    AwaitingItem,
    AwaitingStats,
    await_key,
    dead_key,
    delete_rows,
)
from edge_agent.redaction import redact

_REFUSED = "an awaiting item was refused"


class AwaitingHub(StoreCore):
    """Moving items to *sent, awaiting the hub* and settling them on the hub's result."""

    @survives_damage(retry=True)
    def mark_awaiting(self, ids: Iterable[int], sent_at: float | None = None) -> int:
        """The broker has these queued items: keep them as *sent, awaiting the hub* (one
        transaction). Items no longer queued are skipped. Returns how many moved."""
        wanted = list(ids)
        if not wanted:
            return 0
        when = time.time() if sent_at is None else sent_at
        with self._lock:
            self._check_open()
            moved = 0
            with store_errors("marking sent items failed"), self._cache.transact():
                for item_id in wanted:
                    record = self._take_lease(item_id)
                    if record is None or not self._cache.delete(item_id):
                        continue
                    self._cache.set(await_key(item_id), {**record, "s0": when, "s": when, "n": 1})
                    moved += 1
            return moved

    @survives_damage(retry=False)
    def note_resent(self, ids: Iterable[int], sent_at: float | None = None) -> None:
        """Awaiting items were published again: remember when (their resend schedule
        survives a restart). Unknown ids are ignored."""
        wanted = list(ids)
        if not wanted:
            return
        when = time.time() if sent_at is None else sent_at
        with self._lock:
            self._check_open()
            with store_errors("noting a resend failed", _REFUSED), self._cache.transact():
                for item_id in wanted:
                    key = await_key(item_id)
                    record = self._cache.get(key)
                    if isinstance(record, dict):
                        sends = int(record.get("n", 1)) + 1
                        self._cache.set(key, {**record, "s": when, "n": sends})

    @survives_damage(retry=True)
    def confirm_awaiting(self, ids: Iterable[int]) -> int:
        """The hub confirmed these: remove them (one transaction). Returns how many."""
        wanted = list(ids)
        if not wanted:
            return 0
        with self._lock:
            self._check_open()
            with store_errors("confirming sent items failed"), self._cache.transact():
                removed = delete_rows(self._cache, [await_key(i) for i in wanted])
            self._refresh_bytes()
            return removed

    @survives_damage(retry=True)
    def dead_letter_awaiting(self, item_id: int, reason: str) -> bool:
        """The hub rejected this awaiting item: move it to the dead letters with the hub's
        reason. False when it is not awaiting (already handled)."""
        reason = redact(reason)  # it is written to disk
        with self._lock:
            self._check_open()
            key = await_key(item_id)
            with store_errors("dead-letter failed", _REFUSED), self._cache.transact():
                record = self._cache.get(key)
                if not isinstance(record, dict):
                    return False
                self._cache.delete(key)
                self._cache.set(
                    dead_key(item_id),
                    {
                        "p": record.get("p") or {},
                        "t": record.get("t", 0.0),
                        "a": record.get("n", 1),
                        "reason": reason,
                        "dead_t": time.time(),
                    },
                )
            self._refresh_bytes()
            log.warning(
                "Outbox item rejected by the hub, moved to the dead letters.",
                extra={"item_id": item_id, "reason": reason},
            )
            return True

    @survives_damage(retry=True)
    def requeue_awaiting(self) -> int:
        """Every awaiting item back into the queue, at its original place (for a forwarder
        that confirms by broker acknowledgement). Returns how many moved."""
        with self._lock:
            self._check_open()
            moved = 0
            with store_errors("requeue failed", _REFUSED), self._cache.transact():
                for key in self._prefixed_keys(AWAIT_PREFIX):
                    record = self._cache.get(key)
                    self._cache.delete(key)
                    if not (isinstance(record, dict) and isinstance(record.get("p"), dict)):
                        continue
                    item_id = int(key[len(AWAIT_PREFIX) :])
                    self._cache.set(
                        item_id,
                        {"p": record["p"], "t": record["t"], "a": record.get("a", 0), "e": None},
                    )
                    moved += 1
            return moved

    @survives_damage(retry=True)
    def awaiting(self) -> list[AwaitingItem]:
        """Every item sent and awaiting the hub, oldest id first (read at a forwarder's
        start to rebuild its resend schedule)."""
        with self._lock:
            self._check_open()
            items: list[AwaitingItem] = []
            with store_errors("reading awaiting items failed", _REFUSED):
                for key in self._prefixed_keys(AWAIT_PREFIX):
                    record = self._cache.get(key)
                    if not (isinstance(record, dict) and isinstance(record.get("p"), dict)):
                        continue
                    items.append(
                        AwaitingItem(
                            id=int(key[len(AWAIT_PREFIX) :]),
                            payload=record["p"],
                            put_at=float(record.get("t", 0.0)),
                            first_sent_at=float(record.get("s0", 0.0)),
                            last_sent_at=float(record.get("s", 0.0)),
                            sends=int(record.get("n", 1)),
                        )
                    )
            return items

    @survives_damage(retry=True)
    def awaiting_stats(self) -> AwaitingStats:
        """How many items await the hub and the age of the oldest (since first sent)."""
        items = self.awaiting()
        oldest = min((item.first_sent_at for item in items), default=None)
        age = None if oldest is None else max(0.0, time.time() - oldest)
        return AwaitingStats(count=len(items), oldest_age_s=age)

    @survives_damage(retry=True)
    def awaiting_count(self) -> int:
        """How many items await the hub (counted in the store, see :mod:`.counts`)."""
        with self._lock:
            self._check_open()
            failed = "counting awaiting items failed"
            with store_errors(failed, failed, refused_also=(ValueError,)):
                return prefixed_rows(self._cache, AWAIT_PREFIX)
