"""What the outbox keeps in its one SQLite file: keys, record shapes, and what it reports.

- queue items: integer keys from a persistent counter (never reused), value
  ``{"p": payload, "t": put unix time, "a": attempts, "e": last error}``;
- dead letters: keys ``"dead:<20-digit id>"``, value ``{"p", "t", "a", "reason", "dead_t"}``;
- the id counter ``"meta:next-id"``;
- items sent and awaiting the hub's confirmation: keys ``"await:<20-digit id>"``, value
  the queue record plus ``"s0"``/``"s"`` (first/last sent, unix time) and ``"n"`` (sends);
- small notes ``"meta:note:<name>"`` (the hub presence the forwarder last saw);
- salvage progress ``"meta:salvaged:<set-aside name>"`` (see :mod:`.salvage`).

This is the on-disk format: an outbox written by an earlier release must open in this one.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from diskcache import Cache

MAX_PAYLOAD_BYTES: Final = 1_000_000
"""A single alarm event is a few kB; anything near this is a bug upstream."""

COUNTER_KEY: Final = "meta:next-id"
DEAD_PREFIX: Final = "dead:"
AWAIT_PREFIX: Final = "await:"
NOTE_PREFIX: Final = "meta:note:"
SALVAGE_PREFIX: Final = "meta:salvaged:"
FIRST_ID: Final = 1
MISSING: Final = object()
"""What a read returns for a key that is gone (a stored row may decode to None)."""

RAW_KEEP_BYTES: Final = 64 * 1024
"""How many raw bytes of an undecodable row its dead letter keeps (base64) for an operator;
the whole row stays in a set-aside outbox when the file itself was damaged."""


def await_key(item_id: int) -> str:
    return f"{AWAIT_PREFIX}{item_id:020d}"


def dead_key(item_id: int) -> str:
    return f"{DEAD_PREFIX}{item_id:020d}"


def is_queue_record(record: Any) -> bool:
    """The shape of a queue row: ``{"p": object, "t": time, "a": attempts, "e": error}``."""
    return (
        isinstance(record, dict)
        and isinstance(record.get("p"), dict)
        and type(record.get("t")) in (int, float)
        and type(record.get("a")) is int
        and record["a"] >= 0
        and (record.get("e") is None or isinstance(record.get("e"), str))
    )


def stored_value(cache: Cache, key: int | str) -> tuple[Any, Any, Any] | None:
    """``(mode, filename, value)`` of a row as stored, not decoded; None if it is gone.
    The row ``Cache.get`` reads (same query, an expired row counts as gone), for a caller
    that wants the stored bytes as well as the value (:func:`.jsondisk.decode_queue_row`)."""
    rows = cache._sql(  # no public call returns a row undecoded
        "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1"
        " AND (expire_time IS NULL OR expire_time > ?)",
        (key, time.time()),
    ).fetchall()
    if not rows:
        return None
    ((mode, filename, value),) = rows
    return mode, filename, value


DELETE_CHUNK: Final = 500
"""Keys per DELETE statement (SQLite builds before 3.32 allow 999 parameters)."""


def delete_rows(cache: Cache, keys: Sequence[int | str]) -> int:
    """Delete the rows of ``keys`` inside the caller's transaction; returns how many were
    there. What ``Cache.delete`` does key by key (a SELECT and a DELETE each; an expired row
    counts as gone and stays), one statement per :data:`DELETE_CHUNK` keys. diskcache's
    triggers keep its count and size; our disk writes no side files to remove."""
    for key in keys:
        if type(key) not in (int, str):
            raise TypeError(f"outbox keys are int or str, not {type(key).__name__}")
    deleted = 0
    now = time.time()
    for start in range(0, len(keys), DELETE_CHUNK):
        chunk = keys[start : start + DELETE_CHUNK]
        marks = ",".join("?" * len(chunk))  # placeholders only: the keys are parameters
        cursor = cache._sql(
            f"DELETE FROM Cache WHERE raw = 1 AND key IN ({marks})"  # noqa: S608
            " AND (expire_time IS NULL OR expire_time > ?)",
            (*chunk, now),
        )
        deleted += cursor.rowcount
    return deleted


def raw_row(cache: Cache, key: int | str) -> dict[str, Any] | None:
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
