"""Putting events in the outbox, within its byte cap: a put that returned is on disk."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from edge_agent.common.sqlite_wal import truncate_wal, wal_bytes
from edge_agent.outbox.core import StoreCore, survives_damage
from edge_agent.outbox.errors import (
    OutboxCorrupt,
    OutboxFull,
    PayloadRejected,
    PayloadTooLarge,
    store_errors,
    stored_int,
)
from edge_agent.outbox.integrity import DB_NAME
from edge_agent.outbox.jsondisk import MAX_NESTING, encode_json, nesting_depth
from edge_agent.outbox.logger import log
from edge_agent.outbox.records import COUNTER_KEY, FIRST_ID, MAX_PAYLOAD_BYTES


class Enqueue(StoreCore):
    """``put`` and ``put_many``, refused (:class:`OutboxFull`) at the cap or a full disk."""

    def put(self, payload: Mapping[str, Any]) -> int:
        """Store one event; durable when this returns. Raises :class:`OutboxFull`."""
        return self.put_many([payload])[0]

    @survives_damage(retry=True)
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

            def disk_full(exc: BaseException) -> NoReturn:
                self._refuse(len(records), "disk full (or a write error)", size, exc)

            with store_errors("put failed", on_disk_full=disk_full), self._cache.transact():
                last = stored_int(
                    self._cache.incr(COUNTER_KEY, delta=len(records), default=FIRST_ID - 1)
                )
                first = last - len(records) + 1
                ids = list(range(first, last + 1))
                for item_id, record in zip(ids, records, strict=True):
                    if not self._cache.add(item_id, record):
                        raise OutboxCorrupt(f"outbox id {item_id} already exists")
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

    def _refuse(
        self, count: int, why: str, size: int, cause: BaseException | None = None
    ) -> NoReturn:
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
