"""The dead letters: items that can never be delivered, kept with why until an operator
retries or purges them (``edge-agent outbox SITE retry|purge``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from edge_agent.outbox.core import StoreCore, survives_damage
from edge_agent.outbox.errors import OutboxError, store_errors, stored_int
from edge_agent.outbox.jsondisk import UnsafeRowError
from edge_agent.outbox.logger import log
from edge_agent.outbox.records import COUNTER_KEY, DEAD_PREFIX, FIRST_ID, DeadLetter, raw_row

_REFUSED = "a dead letter was refused"


class DeadLetters(StoreCore):
    """Listing, retrying and purging dead letters."""

    @survives_damage(retry=True)
    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest id first."""
        with self._lock:
            self._check_open()
            with store_errors("reading dead letters failed", _REFUSED):
                return [self._read_dead_letter(key) for key in self._prefixed_keys(DEAD_PREFIX)]

    def _read_dead_letter(self, key: str) -> DeadLetter:
        """One dead letter; a damaged one is still listed, with what is wrong with it."""
        dead_id = int(key[len(DEAD_PREFIX) :])
        try:
            record = self._cache.get(key)
        except UnsafeRowError as exc:
            record = {"reason": f"unreadable dead letter: {exc}", "raw": raw_row(self._cache, key)}
        if not isinstance(record, dict):
            record = {"reason": "unreadable dead letter: not an object"}

        def number(name: str) -> float:
            value = record.get(name)
            return float(value) if isinstance(value, int | float) else 0.0

        payload, raw = record.get("p"), record.get("raw")
        return DeadLetter(
            id=dead_id,
            payload=payload if isinstance(payload, dict) else {},
            reason=str(record.get("reason", ""))[:2000],
            attempts=int(number("a")),
            put_at=number("t"),
            dead_at=number("dead_t"),
            raw=raw if isinstance(raw, dict) else None,
        )

    def oldest_dead_letter(self) -> DeadLetter | None:
        """The dead letter with the lowest id, or ``None``: for health, one indexed row
        instead of every key (ids are zero-padded, so text order is id order)."""
        with self._lock:
            self._check_open()
            with store_errors("reading dead letters failed", _REFUSED):
                row = self._cache._sql(
                    "SELECT key FROM Cache WHERE key >= ? AND key < ? ORDER BY key LIMIT 1",
                    (DEAD_PREFIX, DEAD_PREFIX[:-1] + ";"),
                ).fetchone()
                return None if row is None else self._read_dead_letter(row[0])

    @survives_damage(retry=True)
    def retry_dead(
        self,
        ids: Iterable[int] | None = None,
        rewrite: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> int:
        """Move dead letters (all, or those ``ids``) back to the end of the queue with new
        ids and zero attempts, each payload passed through ``rewrite`` first if given (e.g.
        the site file's corrected asset mapping). Returns how many moved."""
        wanted = None if ids is None else {int(i) for i in ids}
        with self._lock:
            self._check_open()
            moved = 0
            with store_errors("retry failed", _REFUSED), self._cache.transact():
                for key in self._prefixed_keys(DEAD_PREFIX):
                    dead_id = int(key[len(DEAD_PREFIX) :])
                    if wanted is not None and dead_id not in wanted:
                        continue
                    try:
                        record = self._cache.get(key)
                    except UnsafeRowError:
                        continue  # an unreadable dead letter stays for an operator
                    if not isinstance(record, dict) or not isinstance(record.get("p"), dict):
                        continue
                    if not record["p"]:
                        continue  # a quarantined row has no payload to retry
                    put_at = record.get("t")
                    if type(put_at) not in (int, float):
                        put_at = time.time()
                    try:
                        payload = record["p"] if rewrite is None else rewrite(dict(record["p"]))
                    except Exception as exc:  # the caller's callback, not store damage
                        raise OutboxError(f"retry of dead letter {dead_id}: {exc}") from exc
                    new_id = stored_int(self._cache.incr(COUNTER_KEY, default=FIRST_ID - 1))
                    self._cache.add(new_id, {"p": payload, "t": put_at, "a": 0, "e": None})
                    self._cache.delete(key)
                    moved += 1
            self._refresh_bytes()
            return moved

    @survives_damage(retry=True)
    def purge(self) -> int:
        """Delete every dead letter. Returns how many were deleted."""
        with self._lock:
            self._check_open()
            with store_errors("purge failed"), self._cache.transact():
                deleted = sum(
                    1 for key in self._prefixed_keys(DEAD_PREFIX) if self._cache.delete(key)
                )
            self._refresh_bytes()
            log.warning("Outbox dead letters purged.", extra={"purged": deleted})
            return deleted
