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
- the id counter ``"meta:next-id"``;
- items sent and awaiting the hub's confirmation: keys ``"await:<20-digit id>"``, value
  the queue record plus ``"s0"``/``"s"`` (first/last sent, unix time) and ``"n"`` (sends);
- small notes ``"meta:note:<name>"`` (the hub presence the forwarder last saw).

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
carries on with a fresh one, once a minute at most; the calls of a stage never see more
than an :class:`OutboxError`.
"""

from __future__ import annotations

import base64
import errno
import functools
import logging
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, Final, ParamSpec, TypeVar, cast

from diskcache import Cache, Timeout

from edge_agent.common.sqlite_wal import WAL_TRUNCATE_BYTES, truncate_wal, wal_bytes
from edge_agent.errors import EdgeAgentError
from edge_agent.interfaces import OutboxItem
from edge_agent.outbox.aside import awaiting_recovery, set_aside
from edge_agent.outbox.counts import any_queued, prefixed_rows, queued_rows
from edge_agent.outbox.integrity import (
    DB_NAME,
    StoreUnavailable,
    find_damage,
    highest_id,
    is_corruption,
    stamp_version,
)
from edge_agent.outbox.jsondisk import (
    MAX_NESTING,
    JsonOnlyDisk,
    UnsafeRowError,
    encode_json,
    nesting_depth,
)
from edge_agent.redaction import redact

log = logging.getLogger(__name__)

__all__ = [
    "AwaitingItem",
    "AwaitingStats",
    "DeadLetter",
    "Outbox",
    "OutboxCorrupt",
    "OutboxDamaged",
    "OutboxError",
    "OutboxFull",
    "OutboxStats",
    "PayloadTooLarge",
]

MAX_PAYLOAD_BYTES: Final = 1_000_000
"""A single alarm event is a few kB; anything near this is a bug upstream."""

_COUNTER_KEY: Final = "meta:next-id"
_DEAD_PREFIX: Final = "dead:"
_AWAIT_PREFIX: Final = "await:"
_NOTE_PREFIX: Final = "meta:note:"
_FIRST_ID: Final = 1
_SALVAGE_PREFIX: Final = "meta:salvaged:"
_MISSING: Final = object()
"""What a read returns for a key that is gone (a stored row may decode to None)."""

RAW_KEEP_BYTES: Final = 64 * 1024
"""How many raw bytes of an undecodable row its dead letter keeps (base64) for an operator;
the whole row stays in a set-aside outbox when the file itself was damaged."""

REPLACE_AT_MOST_EVERY_S: Final = 60.0
"""A store damaged again this soon after being replaced is not replaced again (a failing
disk would otherwise make a new directory per call): the call fails, callers retry."""

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


class OutboxError(EdgeAgentError):
    """The outbox could not do what was asked (I/O, a locked or damaged store)."""


class OutboxFull(OutboxError):
    """A put was refused: the byte cap is reached or the disk is full (``disk_full``).
    Nothing stored was dropped; the caller keeps the event or counts it as refused."""

    def __init__(self, message: str, *, disk_full: bool = False) -> None:
        super().__init__(message)
        self.disk_full = disk_full


class PayloadRejected(OutboxError):
    """One payload can never be stored (not a JSON object, or too large): retrying it is
    pointless, so the caller rejects that one and keeps the rest."""


class PayloadTooLarge(PayloadRejected):
    """One payload is larger than :data:`MAX_PAYLOAD_BYTES`."""


class OutboxCorrupt(OutboxError):
    """The store holds a row that is not plain JSON (tampering or damage): refused."""


class OutboxDamaged(OutboxCorrupt):
    """The outbox file as a whole cannot be used (not SQLite, damaged pages, a tampered
    schema, settings, key or counter): it must be set aside, not opened."""


_DAMAGE_SIGNS: Final = (
    UnsafeRowError,
    TypeError,
    ValueError,
    KeyError,
    RecursionError,
    ArithmeticError,
)
"""What diskcache raises deep inside when the store hands back data no healthy outbox holds
(a tampered counter, size or key); damage only when raised there (:func:`_raised_in_store`)."""

P = ParamSpec("P")
R = TypeVar("R")


def _stored_int(value: Any) -> int:
    """A counter or size read back from the store, which a healthy store keeps integral."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    raise OutboxCorrupt(f"the store holds {type(value).__name__} where a count belongs")


def _raised_in_store(exc: BaseException) -> bool:
    """Whether ``exc`` came out of diskcache or our disk (a tampered row), not out of our
    own code or a caller's arguments: those are bugs, and must not move the store aside."""
    trace = exc.__traceback__
    while trace is not None:
        module = str(trace.tb_frame.f_globals.get("__name__", ""))
        if module.startswith("diskcache") or module == JsonOnlyDisk.__module__:
            return True
        trace = trace.tb_next
    return False


def _damage_in(exc: BaseException) -> bool:
    if isinstance(exc, OutboxCorrupt | UnsafeRowError):
        return True
    if isinstance(exc, _DAMAGE_SIGNS):
        return _raised_in_store(exc)
    return (
        isinstance(exc, OutboxError) and exc.__cause__ is not None and is_corruption(exc.__cause__)
    )


def _survives_damage(
    retry: bool,
) -> Callable[[Callable[Concatenate[Outbox, P], R]], Callable[Concatenate[Outbox, P], R]]:
    """Run an outbox call; if it finds the store damaged, translate that to
    :class:`OutboxCorrupt`, or (an agent's outbox) set the store aside, open a fresh one
    and, for ``retry`` calls (reads and puts), run the call again on it. A write about
    items of the old store (ack, nack, dead-letter) has nothing left to act on: their items
    wait in the set-aside copy for ``recover``."""

    def decorate(
        method: Callable[Concatenate[Outbox, P], R],
    ) -> Callable[Concatenate[Outbox, P], R]:
        @functools.wraps(method)
        def guarded(self: Outbox, /, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:
                if not _damage_in(exc):
                    raise
                if not self._replace_damaged(method.__name__, exc):
                    if isinstance(exc, OutboxCorrupt):
                        raise
                    raise OutboxCorrupt(f"{method.__name__} failed: {exc}") from exc
            if not retry:
                return cast(R, None)  # only methods that return None are not retried
            try:
                return method(self, *args, **kwargs)
            except _DAMAGE_SIGNS as exc:
                raise OutboxCorrupt(f"{method.__name__} failed: {exc}") from exc

        return guarded

    return decorate


def _is_queue_record(record: Any) -> bool:
    """The shape of a queue row: ``{"p": object, "t": time, "a": attempts, "e": error}``."""
    return (
        isinstance(record, dict)
        and isinstance(record.get("p"), dict)
        and type(record.get("t")) in (int, float)
        and type(record.get("a")) is int
        and record["a"] >= 0
        and (record.get("e") is None or isinstance(record.get("e"), str))
    )


@dataclass(frozen=True)
class DeadLetter:
    """An item that can never be delivered, with why."""

    id: int
    payload: Mapping[str, Any]
    reason: str
    attempts: int
    put_at: float
    dead_at: float
    raw: Mapping[str, Any] | None = None
    """For a row refused as undecodable: its mode, filename and first bytes (base64)."""


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
    wal_bytes: int = 0
    """The SQLite write-ahead log's size on disk (counted against ``cap_bytes`` too)."""
    damaged: tuple[str, ...] = ()
    """Names of set-aside damaged outboxes awaiting ``edge-agent outbox SITE recover``."""
    quarantined: int = 0
    """Rows refused as undecodable (moved to the dead letters) since open."""
    replaced: int = 0
    """Times this process set a damaged store aside and opened a fresh one."""


@dataclass(frozen=True)
class AwaitingItem:
    """An item the broker acknowledged, kept until the hub confirms it (unix times)."""

    id: int
    payload: Mapping[str, Any]
    put_at: float
    first_sent_at: float
    last_sent_at: float
    sends: int


@dataclass(frozen=True)
class AwaitingStats:
    """Items sent and awaiting the hub, and the age of the oldest since it was first sent."""

    count: int
    oldest_age_s: float | None


@dataclass
class _Lease:
    deadline: float
    record: dict[str, Any]


def _await_key(item_id: int) -> str:
    return f"{_AWAIT_PREFIX}{item_id:020d}"


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


def _set_aside_logged(directory: Path, exc: BaseException, during: str) -> Path:
    """Move a damaged store aside (see :mod:`.aside`) and say so at ERROR."""
    try:
        aside = set_aside(directory, str(exc))
    except OSError as error:
        raise OutboxError(f"cannot move the damaged outbox {directory} aside: {error}") from exc
    log.error(
        "Outbox damaged: set aside whole and replaced by a fresh one; "
        "run 'edge-agent outbox SITE recover' to salvage its events.",
        extra={
            "path": str(directory),
            "set_aside_as": aside.name,
            "during": during,
            "damage": str(exc),
            "error_type": type(exc).__name__,
        },
    )
    return aside


def _raw_row(cache: Cache, key: int | str) -> dict[str, Any] | None:
    """A row's stored form, for an operator: never decoded, bytes kept as base64."""
    # diskcache's own per-thread connection: the row is read inside the caller's lock.
    row = cache._sql(  # no public call returns a row undecoded
        "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1", (key,)
    ).fetchone()
    if row is None:
        return None
    mode, filename, value = row
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes):
        kept = value[:RAW_KEEP_BYTES]
        return {
            "mode": mode,
            "filename": filename if isinstance(filename, str) else None,
            "bytes": len(value),
            "b64": base64.b64encode(kept).decode("ascii"),
            "truncated": len(kept) < len(value),
        }
    return {"mode": mode, "filename": None, "value": repr(value)[:200]}


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

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def open(
        cls, directory: Path, max_bytes: int, lease_s: float = 60.0, first_id: int = _FIRST_ID
    ) -> Outbox:
        """Open (or create, mode 0700) the outbox in ``directory``. Raises
        :class:`OutboxDamaged` for a file that must be set aside rather than opened.
        ``first_id``: a new store hands out ids from here (above a store it replaces)."""
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        directory = Path(directory)
        cache = cls._open_cache(directory)
        try:
            outbox = cls(cache, directory, max_bytes, lease_s)
            outbox._raise_counter(first_id - 1)
            return outbox
        except UnsafeRowError as exc:
            cache.close()
            raise OutboxCorrupt(f"the outbox in {directory} holds a refused row: {exc}") from exc
        except (OSError, sqlite3.Error, Timeout) as exc:
            cache.close()
            if isinstance(exc, sqlite3.Error) and is_corruption(exc):
                raise OutboxDamaged(f"the outbox in {directory} is damaged: {exc}") from exc
            raise OutboxError(f"cannot read the outbox in {directory}: {exc}") from exc
        except (TypeError, ValueError, KeyError, RecursionError, ArithmeticError) as exc:
            cache.close()
            raise OutboxDamaged(f"the outbox in {directory} is damaged: {exc}") from exc

    @staticmethod
    def _open_cache(directory: Path) -> Cache:
        """Check the file (:func:`.integrity.find_damage`), then hand it to diskcache."""
        try:
            _secure_directory(directory)
            damage = find_damage(directory / DB_NAME)
        except (OSError, StoreUnavailable) as exc:
            raise OutboxError(f"cannot open the outbox in {directory}: {exc}") from exc
        if damage is not None:
            raise OutboxDamaged(f"the outbox in {directory} is damaged: {damage}")
        try:
            cache = Cache(str(directory), timeout=10, disk=JsonOnlyDisk, **_CACHE_SETTINGS)
        except (OSError, sqlite3.Error, Timeout) as exc:
            if isinstance(exc, sqlite3.Error) and is_corruption(exc):
                raise OutboxDamaged(f"the outbox in {directory} is damaged: {exc}") from exc
            raise OutboxError(f"cannot open the outbox in {directory}: {exc}") from exc
        except (TypeError, ValueError, KeyError, ArithmeticError) as exc:
            raise OutboxDamaged(f"the outbox in {directory} is damaged: {exc}") from exc
        try:
            stamp_version(directory / DB_NAME)
        except sqlite3.Error as exc:
            cache.close()
            raise OutboxError(f"cannot open the outbox in {directory}: {exc}") from exc
        for child in directory.iterdir():
            if child.is_file():
                child.chmod(0o600)
        return cache

    @classmethod
    def open_or_replace(cls, directory: Path, max_bytes: int, lease_s: float = 60.0) -> Outbox:
        """The agent's way in: :meth:`open`, and if the store is damaged, move it aside
        whole (``<name>.damaged-<time>``, never deleted) and open a fresh one. The returned
        outbox also replaces itself when damage shows while running."""
        directory = Path(directory)
        try:
            outbox = cls.open(directory, max_bytes, lease_s)
        except OutboxDamaged as exc:
            aside = _set_aside_logged(directory, exc, "start")
            outbox = cls.open(
                directory, max_bytes, lease_s, first_id=highest_id(aside / DB_NAME) + 1
            )
            outbox._replaced = 1
            outbox._replaced_at = time.monotonic()
        outbox.replace_when_damaged = True
        return outbox

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
                aside = _set_aside_logged(self.directory, exc, during)
                floor = max(self._highest_id, highest_id(aside / DB_NAME))
                self._cache = self._open_cache(self.directory)
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
            current = self._cache.get(_COUNTER_KEY, default=0)
            if type(current) is not int or current < floor:
                self._cache.set(_COUNTER_KEY, floor)
        self._highest_id = max(self._highest_id, floor)

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

    @_survives_damage(retry=True)
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
            if nesting_depth(record) > MAX_NESTING:
                raise PayloadRejected(f"payload nested deeper than {MAX_NESTING} levels")
            try:
                encoded = len(encode_json(record))
            except (TypeError, ValueError, RecursionError) as exc:
                raise PayloadRejected(f"payload is not JSON-serialisable: {exc}") from exc
            if encoded > MAX_PAYLOAD_BYTES:
                raise PayloadTooLarge(f"payload of {encoded} bytes > {MAX_PAYLOAD_BYTES}")
            size += encoded
            records.append(record)
        with self._lock:
            self._check_open()
            if not self._has_room(size):
                # Another process (``outbox purge``) may have made room since we looked.
                self._refresh_bytes()
            if not self._has_room(size):
                self._refuse(len(records), "cap reached", size)
            try:
                with self._cache.transact():
                    last = _stored_int(
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
            self._bytes += size
            self._refusing = False
            self._highest_id = max(self._highest_id, ids[-1])
            self._keep_wal_small()
            return ids

    def _has_room(self, size: int) -> bool:
        """Room under the cap for ``size`` more bytes, counting the stores that share it
        and the WAL file (truncated first when it is what takes the room)."""
        used = self._bytes + size + self.shared_bytes()
        if used + wal_bytes(self.directory / DB_NAME) <= self.max_bytes:
            return True
        if used > self.max_bytes or not truncate_wal(self._cache._con):
            return False
        return used + wal_bytes(self.directory / DB_NAME) <= self.max_bytes

    def _keep_wal_small(self, drained: bool = False) -> None:
        # After a drain, or once it outgrew its bound: the WAL keeps its largest size else.
        if drained or wal_bytes(self.directory / DB_NAME) > WAL_TRUNCATE_BYTES:
            truncate_wal(self._cache._con)

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
        raise OutboxFull(
            f"outbox refused {count} event(s): {why}", disk_full=cause is not None
        ) from cause

    # -- leasing ---------------------------------------------------------------------------

    @_survives_damage(retry=True)
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
                    self._highest_id = max(self._highest_id, item_id)
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

    @_survives_damage(retry=True)
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
                    try:
                        record = self._cache.get(item_id)
                    except UnsafeRowError:
                        continue  # looking does not change the store; a lease dead-letters it
                    if _is_queue_record(record):
                        items.append(
                            OutboxItem(id=item_id, payload=record["p"], attempts=record["a"])
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
            record = self._cache.get(item_id, default=_MISSING)
        except UnsafeRowError as exc:
            self._quarantine(item_id, exc)
            return None
        if record is _MISSING:
            return None
        if not _is_queue_record(record):  # a stored JSON null too
            self._quarantine(item_id, UnsafeRowError("row is not an outbox record"))
            return None
        return cast(dict[str, Any], record)

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
            raw = _raw_row(self._cache, item_id)
            if self._cache.delete(item_id):
                self._cache.set(
                    _dead_key(item_id),
                    {"p": {}, "t": now, "a": 0, "reason": reason, "dead_t": now, "raw": raw},
                )
                self._quarantined += 1

    @_survives_damage(retry=False)
    def ack(self, ids: Iterable[int]) -> None:
        """Delivered: remove these items (one transaction). Unknown ids are ignored."""
        wanted = list(ids)
        if not wanted:
            return
        with self._lock:
            self._check_open()
            try:
                with self._cache.transact():
                    for item_id in wanted:
                        self._cache.delete(item_id)
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"ack failed: {exc}") from exc
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

    @_survives_damage(retry=False)
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

    @_survives_damage(retry=False)
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
            self._refresh_bytes()
            log.warning(
                "Outbox item moved to the dead letters.",
                extra={"item_id": item_id, "reason": reason},
            )

    # -- dead letters ----------------------------------------------------------------------

    @_survives_damage(retry=True)
    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest id first."""
        with self._lock:
            self._check_open()
            letters: list[DeadLetter] = []
            try:
                for key in self._dead_keys():
                    letters.append(self._read_dead_letter(key))
            except UnsafeRowError as exc:
                raise OutboxCorrupt(f"a dead letter was refused: {exc}") from exc
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"reading dead letters failed: {exc}") from exc
            return letters

    def _read_dead_letter(self, key: str) -> DeadLetter:
        """One dead letter; a damaged one is still listed, with what is wrong with it."""
        dead_id = int(key[len(_DEAD_PREFIX) :])
        try:
            record = self._cache.get(key)
        except UnsafeRowError as exc:
            record = {"reason": f"unreadable dead letter: {exc}", "raw": _raw_row(self._cache, key)}
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
            try:
                row = self._cache._sql(
                    "SELECT key FROM Cache WHERE key >= ? AND key < ? ORDER BY key LIMIT 1",
                    (_DEAD_PREFIX, _DEAD_PREFIX[:-1] + ";"),
                ).fetchone()
                return None if row is None else self._read_dead_letter(row[0])
            except UnsafeRowError as exc:
                raise OutboxCorrupt(f"a dead letter was refused: {exc}") from exc
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"reading dead letters failed: {exc}") from exc

    def _dead_keys(self) -> list[str]:
        return [
            key
            for key in self._cache.iterkeys()
            if type(key) is str and key.startswith(_DEAD_PREFIX)
        ]

    @_survives_damage(retry=True)
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
                        new_id = _stored_int(self._cache.incr(_COUNTER_KEY, default=_FIRST_ID - 1))
                        self._cache.add(new_id, {"p": payload, "t": put_at, "a": 0, "e": None})
                        self._cache.delete(key)
                        moved += 1
            except UnsafeRowError as exc:
                raise OutboxCorrupt(f"a dead letter was refused: {exc}") from exc
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"retry failed: {exc}") from exc
            self._refresh_bytes()
            return moved

    @_survives_damage(retry=True)
    def purge(self) -> int:
        """Delete every dead letter. Returns how many were deleted."""
        with self._lock:
            self._check_open()
            try:
                with self._cache.transact():
                    deleted = sum(1 for key in self._dead_keys() if self._cache.delete(key))
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"purge failed: {exc}") from exc
            self._refresh_bytes()
            log.warning("Outbox dead letters purged.", extra={"purged": deleted})
            return deleted

    # -- recovery --------------------------------------------------------------------------

    def salvage_progress(self, source: str) -> dict[str, Any]:
        """How far ``recover`` got with the set-aside outbox ``source`` (empty: not begun)."""
        with self._lock:
            self._check_open()
            try:
                progress = self._cache.get(_SALVAGE_PREFIX + source)
            except UnsafeRowError as exc:
                raise OutboxCorrupt(f"salvage progress refused: {exc}") from exc
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"reading salvage progress failed: {exc}") from exc
            return progress if isinstance(progress, dict) else {}

    @_survives_damage(retry=True)
    def import_salvaged(
        self,
        source: str,
        queued: Sequence[Mapping[str, Any]],
        dead: Sequence[Mapping[str, Any]],
        progress: Mapping[str, Any],
    ) -> int:
        """Append rows salvaged from the set-aside outbox ``source``: queue records (at the
        end of the queue, in the order given, new ids) and dead letters, together with the
        salvage ``progress`` in one transaction, so a ``recover`` that is interrupted and run
        again imports nothing twice. Raises :class:`OutboxFull` past the cap."""
        size = sum(len(encode_json(record)) for record in (*queued, *dead))
        with self._lock:
            self._check_open()
            if self._bytes + size > self.max_bytes:
                raise OutboxFull(f"salvage of {size} bytes would exceed the outbox cap")
            try:
                with self._cache.transact():
                    for record in queued:
                        new_id = _stored_int(self._cache.incr(_COUNTER_KEY, default=_FIRST_ID - 1))
                        self._cache.add(new_id, dict(record))
                    for record in dead:
                        new_id = _stored_int(self._cache.incr(_COUNTER_KEY, default=_FIRST_ID - 1))
                        self._cache.set(_dead_key(new_id), dict(record))
                    self._cache.set(_SALVAGE_PREFIX + source, dict(progress))
            except (OSError, sqlite3.Error) as exc:
                if _is_disk_full(exc):
                    raise OutboxFull(f"salvage refused: disk full ({exc})") from exc
                raise OutboxError(f"salvage failed: {exc}") from exc
            except Timeout as exc:
                raise OutboxError(
                    "salvage failed: the outbox is locked by another process"
                ) from exc
            self._refresh_bytes()
            return len(queued) + len(dead)

    # -- status ----------------------------------------------------------------------------

    @_survives_damage(retry=True)
    def stats(self) -> OutboxStats:
        """Depth, bytes, age of the oldest item, leases held, dead letters, refused puts."""
        with self._lock:
            self._check_open()
            now = time.monotonic()
            oldest_age: float | None = None
            try:
                # Counted in the store at every call, never summed: another process may
                # have changed it (see :mod:`.counts`).
                depth = queued_rows(self._cache)
                dead = prefixed_rows(self._cache, _DEAD_PREFIX)
                self._bytes = self._stored_bytes()
                for item_id in self._queue_ids():
                    record = self._read_queue_record(item_id)
                    if record is not None:
                        oldest_age = max(0.0, time.time() - float(record["t"]))
                        break
            except (UnsafeRowError, ValueError) as exc:
                raise OutboxCorrupt(f"the outbox holds a refused key: {exc}") from exc
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"stats failed: {exc}") from exc
            self._note_recoveries()
            return OutboxStats(
                depth=depth,
                bytes=self._bytes,
                oldest_age_s=oldest_age,
                leased=sum(1 for held in self._leases.values() if held.deadline > now),
                dead=dead,
                refused=self._refused,
                cap_bytes=self.max_bytes,
                refusing=self._refusing,
                wal_bytes=wal_bytes(self.directory / DB_NAME),
                damaged=self._damaged_copies,
                quarantined=self._quarantined,
                replaced=self._replaced,
            )

    # -- sent, awaiting the hub -------------------------------------------------------------
    # An item the broker acknowledged is not delivered yet when the hub must confirm it: it
    # moves from its queue key to ``"await:<20-digit id>"`` (a text key, so ``lease`` never
    # hands it out again) with the times it was sent, until the hub's result confirms it
    # (``confirm_awaiting``), rejects it (``dead_letter_awaiting``) or a forwarder in broker
    # mode puts it back in the queue (``requeue_awaiting``). The original id is kept: resends
    # and requeues keep the original order.

    @_survives_damage(retry=True)
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
            try:
                with self._cache.transact():
                    for item_id in wanted:
                        held = self._leases.pop(item_id, None)
                        record = held.record if held is not None else None
                        if record is None:
                            record = self._read_queue_record(item_id)
                        if record is None or not self._cache.delete(item_id):
                            continue
                        self._cache.set(
                            _await_key(item_id), {**record, "s0": when, "s": when, "n": 1}
                        )
                        moved += 1
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"marking sent items failed: {exc}") from exc
            return moved

    @_survives_damage(retry=False)
    def note_resent(self, ids: Iterable[int], sent_at: float | None = None) -> None:
        """Awaiting items were published again: remember when (their resend schedule
        survives a restart). Unknown ids are ignored."""
        wanted = list(ids)
        if not wanted:
            return
        when = time.time() if sent_at is None else sent_at
        with self._lock:
            self._check_open()
            try:
                with self._cache.transact():
                    for item_id in wanted:
                        key = _await_key(item_id)
                        record = self._cache.get(key)
                        if isinstance(record, dict):
                            sends = int(record.get("n", 1)) + 1
                            self._cache.set(key, {**record, "s": when, "n": sends})
            except UnsafeRowError as exc:
                raise OutboxCorrupt(f"an awaiting item was refused: {exc}") from exc
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"noting a resend failed: {exc}") from exc

    @_survives_damage(retry=True)
    def confirm_awaiting(self, ids: Iterable[int]) -> int:
        """The hub confirmed these: remove them (one transaction). Returns how many."""
        wanted = list(ids)
        if not wanted:
            return 0
        with self._lock:
            self._check_open()
            try:
                with self._cache.transact():
                    removed = sum(1 for i in wanted if self._cache.delete(_await_key(i)))
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"confirming sent items failed: {exc}") from exc
            self._refresh_bytes()
            return removed

    @_survives_damage(retry=True)
    def dead_letter_awaiting(self, item_id: int, reason: str) -> bool:
        """The hub rejected this awaiting item: move it to the dead letters with the hub's
        reason. False when it is not awaiting (already handled)."""
        reason = redact(reason)  # it is written to disk
        with self._lock:
            self._check_open()
            key = _await_key(item_id)
            try:
                with self._cache.transact():
                    record = self._cache.get(key)
                    if not isinstance(record, dict):
                        return False
                    self._cache.delete(key)
                    self._cache.set(
                        _dead_key(item_id),
                        {
                            "p": record.get("p") or {},
                            "t": record.get("t", 0.0),
                            "a": record.get("n", 1),
                            "reason": reason,
                            "dead_t": time.time(),
                        },
                    )
            except UnsafeRowError as exc:
                raise OutboxCorrupt(f"an awaiting item was refused: {exc}") from exc
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"dead-letter failed: {exc}") from exc
            self._refresh_bytes()
            log.warning(
                "Outbox item rejected by the hub, moved to the dead letters.",
                extra={"item_id": item_id, "reason": reason},
            )
            return True

    @_survives_damage(retry=True)
    def requeue_awaiting(self) -> int:
        """Every awaiting item back into the queue, at its original place (for a forwarder
        that confirms by broker acknowledgement). Returns how many moved."""
        with self._lock:
            self._check_open()
            moved = 0
            try:
                with self._cache.transact():
                    for key in self._await_keys():
                        record = self._cache.get(key)
                        self._cache.delete(key)
                        if not (isinstance(record, dict) and isinstance(record.get("p"), dict)):
                            continue
                        item_id = int(key[len(_AWAIT_PREFIX) :])
                        self._cache.set(
                            item_id,
                            {
                                "p": record["p"],
                                "t": record["t"],
                                "a": record.get("a", 0),
                                "e": None,
                            },
                        )
                        moved += 1
            except UnsafeRowError as exc:
                raise OutboxCorrupt(f"an awaiting item was refused: {exc}") from exc
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"requeue failed: {exc}") from exc
            return moved

    @_survives_damage(retry=True)
    def awaiting(self) -> list[AwaitingItem]:
        """Every item sent and awaiting the hub, oldest id first (read at a forwarder's
        start to rebuild its resend schedule)."""
        with self._lock:
            self._check_open()
            items: list[AwaitingItem] = []
            try:
                for key in self._await_keys():
                    record = self._cache.get(key)
                    if not (isinstance(record, dict) and isinstance(record.get("p"), dict)):
                        continue
                    items.append(
                        AwaitingItem(
                            id=int(key[len(_AWAIT_PREFIX) :]),
                            payload=record["p"],
                            put_at=float(record.get("t", 0.0)),
                            first_sent_at=float(record.get("s0", 0.0)),
                            last_sent_at=float(record.get("s", 0.0)),
                            sends=int(record.get("n", 1)),
                        )
                    )
            except UnsafeRowError as exc:
                raise OutboxCorrupt(f"an awaiting item was refused: {exc}") from exc
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"reading awaiting items failed: {exc}") from exc
            return items

    @_survives_damage(retry=True)
    def awaiting_stats(self) -> AwaitingStats:
        """How many items await the hub and the age of the oldest (since first sent)."""
        items = self.awaiting()
        oldest = min((item.first_sent_at for item in items), default=None)
        age = None if oldest is None else max(0.0, time.time() - oldest)
        return AwaitingStats(count=len(items), oldest_age_s=age)

    @_survives_damage(retry=True)
    def awaiting_count(self) -> int:
        """How many items await the hub (counted in the store, see :mod:`.counts`)."""
        with self._lock:
            self._check_open()
            try:
                return prefixed_rows(self._cache, _AWAIT_PREFIX)
            except ValueError as exc:
                raise OutboxCorrupt(f"counting awaiting items failed: {exc}") from exc
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"counting awaiting items failed: {exc}") from exc

    @_survives_damage(retry=True)
    def set_note(self, name: str, value: Mapping[str, Any]) -> None:
        """Keep a small JSON document under ``meta:note:<name>`` (e.g. the hub presence the
        forwarder last saw, for ``edge-agent outbox status`` in another process)."""
        with self._lock:
            self._check_open()
            try:
                self._cache.set(f"{_NOTE_PREFIX}{name}", dict(value))
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"saving a note failed: {exc}") from exc

    @_survives_damage(retry=True)
    def note(self, name: str) -> dict[str, Any] | None:
        """The document :meth:`set_note` kept, or None."""
        with self._lock:
            self._check_open()
            try:
                value = self._cache.get(f"{_NOTE_PREFIX}{name}")
            except UnsafeRowError as exc:
                raise OutboxCorrupt(f"a note was refused: {exc}") from exc
            except (OSError, sqlite3.Error, Timeout) as exc:
                raise OutboxError(f"reading a note failed: {exc}") from exc
            return value if isinstance(value, dict) else None

    def _await_keys(self) -> list[str]:
        return [
            key
            for key in self._cache.iterkeys()
            if type(key) is str and key.startswith(_AWAIT_PREFIX)
        ]

    def _note_recoveries(self) -> None:
        """Follow ``recover`` (another process) from here: which set-aside outboxes still
        wait for it."""
        try:
            awaiting = tuple(path.name for path in awaiting_recovery(self.directory))
        except OSError as exc:
            log.warning("Could not list set-aside outboxes.", extra={"error": str(exc)})
            return
        self._damaged_copies = awaiting

    # -- internals -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxError("the outbox is closed")

    def _stored_bytes(self) -> int:
        return _stored_int(self._cache.reset("size"))

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
