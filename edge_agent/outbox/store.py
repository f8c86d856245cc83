"""The outbox: a durable FIFO of alarm events on local disk, with leases and dead letters.

An item stays on disk until a forwarder confirms delivery (``ack``). ``lease`` hands items
out oldest first and remembers, in memory, who holds them until ``lease_s`` runs out, so a
crash (which forgets every lease) redelivers them — first, since they are the oldest.

Built on diskcache with :class:`~edge_agent.outbox.jsondisk.JsonOnlyDisk` (JSON only, never
pickle), SQLite ``synchronous=FULL`` and ``eviction_policy="none"``; the byte cap is ours.
A ``put`` that returned is on disk. One SQLite file holds three kinds of rows:

- queue items: integer keys from a persistent counter (never reused), value
  ``{"p": payload, "t": put unix time, "a": attempts, "e": last error}``;
- dead letters: keys ``"dead:<20-digit id>"``, value ``{"p", "t", "a", "reason", "dead_t"}``;
- the id counter ``"meta:next-id"``.

All calls block (an fsync per transaction); async code calls them via ``asyncio.to_thread``.
One ``Outbox`` per directory per process; it is thread-safe within that process.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from diskcache import Cache, Timeout

from edge_agent.interfaces import OutboxItem
from edge_agent.outbox.jsondisk import JsonOnlyDisk, UnsafeRowError, encode_json
from edge_agent.redaction import redact

log = logging.getLogger(__name__)

__all__ = [
    "DeadLetter",
    "Outbox",
    "OutboxCorrupt",
    "OutboxError",
    "OutboxFull",
    "OutboxStats",
    "PayloadTooLarge",
]

MAX_PAYLOAD_BYTES: Final = 1_000_000
"""A single alarm event is a few kB; anything near this is a bug upstream."""

_COUNTER_KEY: Final = "meta:next-id"
_DEAD_PREFIX: Final = "dead:"
_FIRST_ID: Final = 1

# diskcache settings: no eviction (it silently deletes), no expiry culling (we set no
# expiry, and culling costs a query per write), FULL sync (survives power loss), values
# always inside SQLite (side files are written without fsync).
_CACHE_SETTINGS: Final[dict[str, Any]] = {
    "eviction_policy": "none",
    "cull_limit": 0,
    "statistics": 0,
    "tag_index": 0,
    "sqlite_synchronous": 2,
    "sqlite_journal_mode": "wal",
    "disk_min_file_size": 2**31,
    "size_limit": 2**62,
}


class OutboxError(Exception):
    """The outbox could not do what was asked (I/O, a locked or damaged store)."""


class OutboxFull(OutboxError):
    """A put was refused: the byte cap is reached or the disk is full. Nothing stored was
    dropped; the caller keeps the event or counts it as refused."""


class PayloadRejected(OutboxError):
    """One payload can never be stored (not a JSON object, or too large): retrying it is
    pointless, so the caller rejects that one and keeps the rest."""


class PayloadTooLarge(PayloadRejected):
    """One payload is larger than :data:`MAX_PAYLOAD_BYTES`."""


class OutboxCorrupt(OutboxError):
    """The store holds a row that is not plain JSON (tampering or damage): refused."""


@dataclass(frozen=True)
class DeadLetter:
    """An item that can never be delivered, with why."""

    id: int
    payload: Mapping[str, Any]
    reason: str
    attempts: int
    put_at: float
    dead_at: float


@dataclass(frozen=True)
class OutboxStats:
    """Depth and size for health, metrics and ``edge-agent outbox status``.

    ``bytes`` counts the JSON of queued items and dead letters (both occupy the disk and
    both count against ``cap_bytes``). ``refused`` counts puts refused since open.
    ``refusing`` is the health signal: True from a refused put (cap reached or disk full)
    until the next put that succeeds — a disk-full refusal can happen well below the cap,
    so ``bytes >= cap_bytes`` alone does not show it.
    """

    depth: int
    bytes: int
    oldest_age_s: float | None
    leased: int
    dead: int
    refused: int
    cap_bytes: int
    refusing: bool = False


@dataclass
class _Lease:
    deadline: float
    record: dict[str, Any]


def _dead_key(item_id: int) -> str:
    return f"{_DEAD_PREFIX}{item_id:020d}"


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return True
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        # SQLITE_FULL (13); an I/O error on write (10, extended codes) is what a file-size
        # limit (EFBIG) produces.
        if code is not None and (code & 0xFF) in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR):
            return True
        return "full" in str(exc) or "disk I/O error" in str(exc)
    return False


def _secure_directory(directory: Path) -> None:
    """Create ``directory`` 0700 (diskcache would make it 0755) and tighten it if wider."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "Outbox directory was readable by others; set to 0700.",
            extra={"path": str(directory), "mode": oct(mode)},
        )
        directory.chmod(0o700)


class Outbox:
    """A durable FIFO with leases, acks, nacks and a dead-letter queue. See the module doc."""

    def __init__(self, cache: Cache, directory: Path, max_bytes: int, lease_s: float) -> None:
        """Use :meth:`open`."""
        self._cache = cache
        self.directory = directory
        self.max_bytes = max_bytes
        self.lease_s = lease_s
        self._lock = threading.RLock()
        self._leases: dict[int, _Lease] = {}
        self._refused = 0
        self._refusing = False
        self._closed = False
        self._depth, self._dead = self._count_rows()
        self._bytes = self._stored_bytes()

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: Path, max_bytes: int, lease_s: float = 60.0) -> Outbox:
        """Open (or create, mode 0700) the outbox in ``directory``."""
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        directory = Path(directory)
        try:
            _secure_directory(directory)
            cache = Cache(str(directory), timeout=10, disk=JsonOnlyDisk, **_CACHE_SETTINGS)
        except (OSError, sqlite3.Error, Timeout) as exc:
            raise OutboxError(f"cannot open the outbox in {directory}: {exc}") from exc
        for child in directory.iterdir():
            if child.is_file():
                child.chmod(0o600)
        try:
            return cls(cache, directory, max_bytes, lease_s)
        except UnsafeRowError as exc:
            cache.close()
            raise OutboxCorrupt(f"the outbox in {directory} holds a refused row: {exc}") from exc
        except (OSError, sqlite3.Error, Timeout) as exc:
            cache.close()
            raise OutboxError(f"cannot read the outbox in {directory}: {exc}") from exc

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

    # -- writing ---------------------------------------------------------------------------

    def put(self, payload: Mapping[str, Any]) -> int:
        """Store one event; durable when this returns. Raises :class:`OutboxFull`."""
        return self.put_many([payload])[0]

    def put_many(self, payloads: Sequence[Mapping[str, Any]]) -> list[int]:
        """Store several events in one transaction (one fsync): all or none."""
        if not payloads:
            return []
        now = time.time()
        records: list[dict[str, Any]] = []
        size = 0
        for payload in payloads:
            if not isinstance(payload, Mapping):
                raise PayloadRejected(f"an outbox payload is a JSON object, not {type(payload)}")
            record = {"p": dict(payload), "t": now, "a": 0, "e": None}
            try:
                encoded = len(encode_json(record))
            except (TypeError, ValueError) as exc:
                raise PayloadRejected(f"payload is not JSON-serialisable: {exc}") from exc
            if encoded > MAX_PAYLOAD_BYTES:
                raise PayloadTooLarge(f"payload of {encoded} bytes > {MAX_PAYLOAD_BYTES}")
            size += encoded
            records.append(record)
        with self._lock:
            self._check_open()
            if self._bytes + size > self.max_bytes:
                self._refuse(len(records), "cap reached", size)
            try:
                with self._cache.transact():
                    last = int(
                        self._cache.incr(_COUNTER_KEY, delta=len(records), default=_FIRST_ID - 1)
                    )
                    first = last - len(records) + 1
                    ids = list(range(first, last + 1))
                    for item_id, record in zip(ids, records, strict=True):
                        if not self._cache.add(item_id, record):
                            raise OutboxCorrupt(f"outbox id {item_id} already exists")
            except (OSError, sqlite3.Error) as exc:
                if _is_disk_full(exc):
                    self._refuse(len(records), "disk full (or a write error)", size, exc)
                raise OutboxError(f"put failed: {exc}") from exc
            except Timeout as exc:
                raise OutboxError("put failed: the outbox is locked by another process") from exc
            self._depth += len(ids)
            self._bytes += size
            self._refusing = False
            return ids

    def _refuse(self, count: int, why: str, size: int, cause: BaseException | None = None) -> None:
        self._refused += count
        self._refusing = True
        log.error(
            "Outbox refused new events: %s; stored events are kept.",
            why,
            extra={
                "refused": count,
                "refused_total": self._refused,
                "outbox_bytes": self._bytes,
                "cap_bytes": self.max_bytes,
                "bytes": size,
                "path": str(self.directory),
                "error": str(cause) if cause is not None else None,
            },
        )
        raise OutboxFull(f"outbox refused {count} event(s): {why}") from cause

    # -- leasing ---------------------------------------------------------------------------

    def lease(self, n: int) -> list[OutboxItem]:
        """Up to ``n`` items, oldest first, that nobody holds an unexpired lease on."""
        if n <= 0:
            return []
        with self._lock:
            self._check_open()
            now = time.monotonic()
            leased: list[OutboxItem] = []
            try:
                for item_id in self._queue_ids():
                    held = self._leases.get(item_id)
                    if held is not None and held.deadline > now:
                        continue
                    record = self._read_queue_record(item_id)
                    if record is None:
                        continue
                    self._leases[item_id] = _Lease(now + self.lease_s, record)
                    leased.append(
                        OutboxItem(id=item_id, payload=record["p"], attempts=int(record["a"]))
                    )
                    if len(leased) >= n:
                        break
            except UnsafeRowError as exc:
                raise OutboxCorrupt(f"the outbox holds a refused key: {exc}") from exc
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"lease failed: {exc}") from exc
            return leased

    def peek(self, n: int) -> list[OutboxItem]:
        """Up to ``n`` queued items, oldest first, leased or not, without leasing them
        (for ``edge-agent outbox list``)."""
        with self._lock:
            self._check_open()
            items: list[OutboxItem] = []
            try:
                for item_id in self._queue_ids():
                    if len(items) >= n:
                        break
                    record = self._cache.get(item_id)
                    if isinstance(record, dict) and isinstance(record.get("p"), dict):
                        items.append(
                            OutboxItem(id=item_id, payload=record["p"], attempts=int(record["a"]))
                        )
            except UnsafeRowError as exc:
                raise OutboxCorrupt(f"the outbox holds a refused row: {exc}") from exc
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"peek failed: {exc}") from exc
            return items

    def _queue_ids(self) -> Iterator[int]:
        # SQLite sorts integers before text: the queue's integer keys come first, in order.
        for key in self._cache.iterkeys():
            if type(key) is not int:
                return
            yield key

    def _read_queue_record(self, item_id: int) -> dict[str, Any] | None:
        """The stored record, or None if it vanished. A refused row is quarantined."""
        try:
            record = self._cache.get(item_id)
        except UnsafeRowError as exc:
            self._quarantine(item_id, exc)
            return None
        if record is None:
            return None
        if not (isinstance(record, dict) and isinstance(record.get("p"), dict)):
            self._quarantine(item_id, UnsafeRowError("row is not an outbox record"))
            return None
        return record

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
            if self._cache.delete(item_id):
                self._depth -= 1
                self._cache.set(
                    _dead_key(item_id),
                    {"p": {}, "t": now, "a": 0, "reason": reason, "dead_t": now},
                )
                self._dead += 1

    def ack(self, ids: Iterable[int]) -> None:
        """Delivered: remove these items (one transaction). Unknown ids are ignored."""
        wanted = list(ids)
        if not wanted:
            return
        with self._lock:
            self._check_open()
            try:
                with self._cache.transact():
                    removed = sum(1 for item_id in wanted if self._cache.delete(item_id))
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"ack failed: {exc}") from exc
            for item_id in wanted:
                self._leases.pop(item_id, None)
            self._depth -= removed
            self._refresh_bytes()

    def release(self, ids: Iterable[int]) -> None:
        """Give leases back untouched: no attempt counted, nothing written (for a lease
        its taker never used)."""
        with self._lock:
            for item_id in ids:
                self._leases.pop(item_id, None)

    def nack(self, ids: Iterable[int], reason: str | None = None) -> None:
        """Not delivered: release the leases and count an attempt; items keep their place."""
        wanted = list(ids)
        reason = redact(reason) if reason is not None else None  # it is written to disk
        if not wanted:
            return
        with self._lock:
            self._check_open()
            try:
                with self._cache.transact():
                    for item_id in wanted:
                        held = self._leases.pop(item_id, None)
                        record = held.record if held is not None else None
                        if record is None:
                            record = self._read_queue_record(item_id)
                        if record is None:
                            continue
                        record = {**record, "a": int(record["a"]) + 1, "e": reason}
                        # Cache.set on an existing key updates the row in place: same key,
                        # same place in the order.
                        if item_id in self._cache:
                            self._cache.set(item_id, record)
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"nack failed: {exc}") from exc
            self._refresh_bytes()

    def dead_letter(self, item_id: int, reason: str) -> None:
        """Move an item that can never be delivered to the dead letters, with ``reason``
        (secrets redacted: it is written to disk and shown by ``edge-agent outbox``)."""
        reason = redact(reason)
        with self._lock:
            self._check_open()
            try:
                with self._cache.transact():
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
                        _dead_key(item_id),
                        {
                            "p": record["p"],
                            "t": record["t"],
                            "a": record["a"],
                            "reason": reason,
                            "dead_t": time.time(),
                        },
                    )
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"dead-letter failed: {exc}") from exc
            self._depth -= 1
            self._dead += 1
            self._refresh_bytes()
            log.warning(
                "Outbox item moved to the dead letters.",
                extra={"item_id": item_id, "reason": reason},
            )

    # -- dead letters ----------------------------------------------------------------------

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest id first."""
        with self._lock:
            self._check_open()
            letters: list[DeadLetter] = []
            try:
                for key in self._dead_keys():
                    record = self._cache.get(key)
                    if not isinstance(record, dict):
                        continue
                    letters.append(
                        DeadLetter(
                            id=int(key[len(_DEAD_PREFIX) :]),
                            payload=record.get("p") or {},
                            reason=str(record.get("reason", "")),
                            attempts=int(record.get("a", 0)),
                            put_at=float(record.get("t", 0.0)),
                            dead_at=float(record.get("dead_t", 0.0)),
                        )
                    )
            except UnsafeRowError as exc:
                raise OutboxCorrupt(f"a dead letter was refused: {exc}") from exc
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"reading dead letters failed: {exc}") from exc
            return letters

    def _dead_keys(self) -> list[str]:
        return [
            key
            for key in self._cache.iterkeys()
            if type(key) is str and key.startswith(_DEAD_PREFIX)
        ]

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
            try:
                with self._cache.transact():
                    for key in self._dead_keys():
                        dead_id = int(key[len(_DEAD_PREFIX) :])
                        if wanted is not None and dead_id not in wanted:
                            continue
                        record = self._cache.get(key)
                        if not isinstance(record, dict) or not record.get("p"):
                            continue  # a quarantined row has no payload to retry
                        new_id = int(self._cache.incr(_COUNTER_KEY, default=_FIRST_ID - 1))
                        payload = record["p"] if rewrite is None else rewrite(dict(record["p"]))
                        self._cache.add(new_id, {"p": payload, "t": record["t"], "a": 0, "e": None})
                        self._cache.delete(key)
                        moved += 1
            except UnsafeRowError as exc:
                raise OutboxCorrupt(f"a dead letter was refused: {exc}") from exc
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"retry failed: {exc}") from exc
            self._depth += moved
            self._dead -= moved
            self._refresh_bytes()
            return moved

    def purge(self) -> int:
        """Delete every dead letter. Returns how many were deleted."""
        with self._lock:
            self._check_open()
            try:
                with self._cache.transact():
                    deleted = sum(1 for key in self._dead_keys() if self._cache.delete(key))
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"purge failed: {exc}") from exc
            self._dead -= deleted
            self._refresh_bytes()
            log.warning("Outbox dead letters purged.", extra={"purged": deleted})
            return deleted

    # -- status ----------------------------------------------------------------------------

    def stats(self) -> OutboxStats:
        """Depth, bytes, age of the oldest item, leases held, dead letters, refused puts."""
        with self._lock:
            self._check_open()
            now = time.monotonic()
            oldest_age: float | None = None
            try:
                for item_id in self._queue_ids():
                    record = self._read_queue_record(item_id)
                    if record is not None:
                        oldest_age = max(0.0, time.time() - float(record["t"]))
                        break
            except UnsafeRowError as exc:
                raise OutboxCorrupt(f"the outbox holds a refused key: {exc}") from exc
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"stats failed: {exc}") from exc
            return OutboxStats(
                depth=self._depth,
                bytes=self._bytes,
                oldest_age_s=oldest_age,
                leased=sum(1 for held in self._leases.values() if held.deadline > now),
                dead=self._dead,
                refused=self._refused,
                cap_bytes=self.max_bytes,
                refusing=self._refusing,
            )

    # -- internals -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxError("the outbox is closed")

    def _count_rows(self) -> tuple[int, int]:
        depth = dead = 0
        for key in self._cache.iterkeys():
            if type(key) is int:
                depth += 1
            elif key.startswith(_DEAD_PREFIX):
                dead += 1
        return depth, dead

    def _stored_bytes(self) -> int:
        return int(self._cache.reset("size"))

    def _refresh_bytes(self) -> None:
        try:
            self._bytes = self._stored_bytes()
        except (sqlite3.Error, Timeout) as exc:  # stats only; the write itself succeeded
            log.warning("Could not read the outbox size.", extra={"error": str(exc)})
