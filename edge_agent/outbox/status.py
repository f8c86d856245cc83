"""What the outbox reports about itself (depth, bytes, dead letters, damage), and the
small notes a forwarder leaves for ``edge-agent outbox status`` in another process."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from edge_agent.common.sqlite_wal import wal_bytes
from edge_agent.outbox.aside import awaiting_recovery
from edge_agent.outbox.core import StoreCore, survives_damage
from edge_agent.outbox.counts import prefixed_rows, queued_rows
from edge_agent.outbox.errors import store_errors
from edge_agent.outbox.integrity import DB_NAME
from edge_agent.outbox.logger import log
from edge_agent.outbox.records import DEAD_PREFIX, NOTE_PREFIX, OutboxStats


class Status(StoreCore):
    """``stats`` for health and metrics; ``set_note`` and ``note``."""

    @survives_damage(retry=True)
    def stats(self) -> OutboxStats:
        """Depth, bytes, age of the oldest item, leases held, dead letters, refused puts."""
        with self._lock:
            self._check_open()
            now = time.monotonic()
            oldest_age: float | None = None
            refused = "the outbox holds a refused key"
            with store_errors("stats failed", refused, refused_also=(ValueError,)):
                # Counted in the store at every call, never summed: another process may
                # have changed it (see :mod:`.counts`).
                depth = queued_rows(self._cache)
                dead = prefixed_rows(self._cache, DEAD_PREFIX)
                self._bytes = self._stored_bytes()
                for item_id in self._queue_ids():
                    record = self._read_queue_record(item_id)
                    if record is not None:
                        oldest_age = max(0.0, time.time() - float(record["t"]))
                        break
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

    def _note_recoveries(self) -> None:
        """Follow ``recover`` (another process) from here: which set-aside outboxes still
        wait for it."""
        try:
            awaiting = tuple(path.name for path in awaiting_recovery(self.directory))
        except OSError as exc:
            log.warning("Could not list set-aside outboxes.", extra={"error": str(exc)})
            return
        self._damaged_copies = awaiting

    @survives_damage(retry=True)
    def set_note(self, name: str, value: Mapping[str, Any]) -> None:
        """Keep a small JSON document under ``meta:note:<name>`` (e.g. the hub presence the
        forwarder last saw, for ``edge-agent outbox status`` in another process)."""
        with self._lock:
            self._check_open()
            with store_errors("saving a note failed"):
                self._cache.set(f"{NOTE_PREFIX}{name}", dict(value))

    @survives_damage(retry=True)
    def note(self, name: str) -> dict[str, Any] | None:
        """The document :meth:`set_note` kept, or None."""
        with self._lock:
            self._check_open()
            with store_errors("reading a note failed", "a note was refused"):
                value = self._cache.get(f"{NOTE_PREFIX}{name}")
            return value if isinstance(value, dict) else None
