"""What every part of the outbox shares: the open store and its bookkeeping (leases, byte
total, counters), reading the queue, and surviving damage found while running.

The calls themselves live beside it, one module per job (:mod:`.enqueue`,
:mod:`.delivery`, :mod:`.dead_letters`, :mod:`.awaiting`, :mod:`.status`,
:mod:`.salvaged`), and :class:`~.store.Outbox` puts them together.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, Final, ParamSpec, TypeVar, cast

from diskcache import Cache, Timeout

from edge_agent.common.sqlite_wal import WAL_TRUNCATE_BYTES, truncate_wal, wal_bytes
from edge_agent.outbox.errors import (
    DAMAGE_SIGNS,
    OutboxCorrupt,
    OutboxError,
    damage_in,
    stored_int,
)
from edge_agent.outbox.integrity import DB_NAME, highest_id
from edge_agent.outbox.jsondisk import UnsafeRowError, decode_queue_row
from edge_agent.outbox.logger import log
from edge_agent.outbox.opening import open_cache, set_aside_logged
from edge_agent.outbox.records import (
    COUNTER_KEY,
    MISSING,
    dead_key,
    is_queue_record,
    raw_row,
    stored_value,
)
from edge_agent.redaction import redact

REPLACE_AT_MOST_EVERY_S: Final = 60.0
"""A store damaged again this soon after being replaced is not replaced again (a failing
disk would otherwise make a new directory per call): the call fails, callers retry."""


@dataclass(slots=True)
class Lease:
    """Who holds a queue item until when (monotonic), and the record it was handed out as."""

    deadline: float
    record: dict[str, Any]


class StoreCore:
    """The state one outbox keeps, and the helpers its calls share."""

    def __init__(self, cache: Cache, directory: Path, max_bytes: int, lease_s: float) -> None:
        """Use :meth:`~.store.Outbox.open`."""
        self._cache = cache
        self.directory = directory
        self.max_bytes = max_bytes
        self.lease_s = lease_s
        self._lock = threading.RLock()
        self._leases: dict[int, Lease] = {}
        self._refused = 0
        self._refusing = False
        # Other stores sharing the cap (the work-order ledger): their bytes, read per put.
        self.shared_bytes: Callable[[], int] = lambda: 0
        self._closed = False
        # Damage handling (see the module doc): only an agent's outbox replaces itself.
        self.replace_when_damaged = False
        self._replaced = 0
        self._replaced_at: float | None = None
        self._quarantined = 0
        self._highest_id = 0
        self._damaged_copies: tuple[str, ...] = ()
        self._bytes = self._recounted_bytes()

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxError("the outbox is closed")

    # -- damage while running --------------------------------------------------------------

    def _replace_damaged(self, during: str, exc: BaseException) -> bool:
        """Set the damaged store aside and continue on a fresh one (if this outbox may and
        did not just do so). Returns whether it did."""
        with self._lock:
            now = time.monotonic()
            recently = (
                self._replaced_at is not None and now - self._replaced_at < REPLACE_AT_MOST_EVERY_S
            )
            if not self.replace_when_damaged or self._closed or recently:
                log.error(
                    "Outbox store damaged; not replaced.",
                    extra={
                        "path": str(self.directory),
                        "during": during,
                        "error": str(exc),
                        "error_type": type(exc).__name__,
                        "why_not": "closed or not the agent's"
                        if not recently
                        else "replaced less than a minute ago",
                    },
                )
                return False
            self._replaced_at = now  # also when it fails: at most one attempt a minute
            self._cache.close()  # diskcache reconnects on the next call if we stay on it
            try:
                aside = set_aside_logged(self.directory, exc, during)
                floor = max(self._highest_id, highest_id(aside / DB_NAME))
                self._cache = open_cache(self.directory)
            except (OSError, OutboxError) as error:
                log.error(
                    "Outbox could not be replaced after damage; calls go on failing.",
                    extra={"path": str(self.directory), "error": str(error)},
                )
                raise OutboxError(f"the damaged outbox could not be replaced: {error}") from exc
            self._leases.clear()
            self._raise_counter(floor)
            self._bytes = self._stored_bytes()
            self._replaced += 1
            return True

    def _raise_counter(self, floor: int) -> None:
        """Ids of a fresh store continue above ``floor`` (none of the old ids comes back)."""
        if floor <= 0:
            return
        with self._lock, self._cache.transact():
            current = self._cache.get(COUNTER_KEY, default=0)
            if type(current) is not int or current < floor:
                self._cache.set(COUNTER_KEY, floor)
        self._highest_id = max(self._highest_id, floor)

    # -- the queue -------------------------------------------------------------------------

    def _queue_ids(self) -> Iterator[int]:
        # SQLite sorts integers before text: the queue's integer keys come first, in order.
        for key in self._cache.iterkeys():
            if type(key) is not int:
                return
            yield key

    def _prefixed_keys(self, prefix: str) -> list[str]:
        return [
            key for key in self._cache.iterkeys() if type(key) is str and key.startswith(prefix)
        ]

    def _read_queue_record(self, item_id: int) -> dict[str, Any] | None:
        """The stored record, or None if it vanished. A refused row is quarantined."""
        try:
            record = self._cache.get(item_id, default=MISSING)
        except UnsafeRowError as exc:
            self._quarantine(item_id, exc)
            return None
        if record is MISSING:
            return None
        return self._checked_record(item_id, record)

    def _read_queue_row(self, item_id: int) -> tuple[dict[str, Any], bytes | None] | None:
        """:meth:`_read_queue_record` and the stored JSON bytes of its payload (None when
        the row is not laid out as the outbox writes it: encode the payload then)."""
        try:
            row = stored_value(self._cache, item_id)
            if row is None:
                return None
            value, body = decode_queue_row(*row)
        except UnsafeRowError as exc:
            self._quarantine(item_id, exc)
            return None
        record = self._checked_record(item_id, value)
        return None if record is None else (record, body)

    def _checked_record(self, item_id: int, record: Any) -> dict[str, Any] | None:
        if not is_queue_record(record):  # a stored JSON null too
            self._quarantine(item_id, UnsafeRowError("row is not an outbox record"))
            return None
        return cast(dict[str, Any], record)

    def _take_lease(self, item_id: int) -> dict[str, Any] | None:
        """Release the lease on ``item_id`` and return the record it was handed out as (no
        second read of the row), else the stored record; None if the item is gone."""
        held = self._leases.pop(item_id, None)
        if held is not None:
            return held.record
        return self._read_queue_record(item_id)

    def _quarantine(self, item_id: int, exc: Exception) -> None:
        """Move an unreadable row out of the queue, without decoding it, to the dead
        letters, so it neither runs nor blocks everything behind it."""
        reason = redact(f"refused stored row: {exc}")
        log.error(
            "Outbox row refused and moved to the dead letters.",
            extra={"item_id": item_id, "reason": reason, "path": str(self.directory)},
        )
        now = time.time()
        with self._cache.transact():
            raw = raw_row(self._cache, item_id)
            if self._cache.delete(item_id):
                self._cache.set(
                    dead_key(item_id),
                    {"p": {}, "t": now, "a": 0, "reason": reason, "dead_t": now, "raw": raw},
                )
                self._quarantined += 1

    # -- bytes and the WAL -----------------------------------------------------------------

    def _keep_wal_small(self, drained: bool = False) -> None:
        # After a drain, or once it outgrew its bound: the WAL keeps its largest size else.
        if drained or wal_bytes(self.directory / DB_NAME) > WAL_TRUNCATE_BYTES:
            truncate_wal(self._cache._con)

    def _stored_bytes(self) -> int:
        return stored_int(self._cache.reset("size"))

    def _recounted_bytes(self) -> int:
        """The bytes the rows really hold, written back when diskcache's running total says
        otherwise: a total that drifted (a crash mid-update, a hand-edited file) would
        otherwise refuse every new alert as over the cap, or let the cap be overrun, for
        good. One scan at open."""
        # One transaction: another process (``edge-agent outbox``) writing between the sum
        # and the correction would leave the total off again.
        with self._cache.transact():
            stored = self._stored_bytes()
            row = self._cache._sql("SELECT COALESCE(SUM(size), 0) FROM Cache").fetchone()
            actual = row[0] if row is not None else 0
            if type(actual) is not int or actual < 0:
                raise OutboxError(f"the outbox rows add up to {actual!r} bytes")
            if actual != stored:
                self._cache.reset("size", actual)
        if actual != stored:
            log.warning(
                "Outbox size total was wrong; corrected from the rows.",
                extra={"stored_bytes": stored, "actual_bytes": actual, "path": str(self.directory)},
            )
        return actual

    def _refresh_bytes(self) -> None:
        try:
            self._bytes = self._stored_bytes()
        except (sqlite3.Error, Timeout) as exc:  # stats only; the write itself succeeded
            log.warning("Could not read the outbox size.", extra={"error": str(exc)})


Store = TypeVar("Store", bound=StoreCore)
P = ParamSpec("P")
R = TypeVar("R")


def survives_damage(
    retry: bool,
) -> Callable[[Callable[Concatenate[Store, P], R]], Callable[Concatenate[Store, P], R]]:
    """Run an outbox call; if it finds the store damaged, translate that to
    :class:`OutboxCorrupt`, or (an agent's outbox) set the store aside, open a fresh one
    and, for ``retry`` calls (reads and puts), run the call again on it. A write about
    items of the old store (ack, nack, dead-letter) has nothing left to act on: their items
    wait in the set-aside copy for ``recover``."""

    def decorate(
        method: Callable[Concatenate[Store, P], R],
    ) -> Callable[Concatenate[Store, P], R]:
        @functools.wraps(method)
        def guarded(self: Store, /, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:
                if not damage_in(exc):
                    raise
                if not self._replace_damaged(method.__name__, exc):
                    if isinstance(exc, OutboxCorrupt):
                        raise
                    raise OutboxCorrupt(f"{method.__name__} failed: {exc}") from exc
            if not retry:
                return cast(R, None)  # only methods that return None are not retried
            try:
                return method(self, *args, **kwargs)
            except DAMAGE_SIGNS as exc:
                raise OutboxCorrupt(f"{method.__name__} failed: {exc}") from exc

        return guarded

    return decorate
