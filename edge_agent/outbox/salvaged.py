"""The live outbox's side of ``recover`` (:mod:`.salvage`): rows salvaged from a set-aside
copy come in with the salvage's progress, in one transaction, so nothing comes in twice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from edge_agent.outbox.core import StoreCore, survives_damage
from edge_agent.outbox.errors import OutboxFull, store_errors, stored_int
from edge_agent.outbox.jsondisk import encode_json
from edge_agent.outbox.records import COUNTER_KEY, FIRST_ID, SALVAGE_PREFIX, dead_key


def _refused_disk_full(exc: BaseException) -> NoReturn:
    raise OutboxFull(f"salvage refused: disk full ({exc})") from exc


class SalvagedRows(StoreCore):
    """``salvage_progress`` and ``import_salvaged``."""

    def salvage_progress(self, source: str) -> dict[str, Any]:
        """How far ``recover`` got with the set-aside outbox ``source`` (empty: not begun)."""
        with self._lock:
            self._check_open()
            failed = "reading salvage progress failed"
            with store_errors(failed, "salvage progress refused"):
                progress = self._cache.get(SALVAGE_PREFIX + source)
            return progress if isinstance(progress, dict) else {}

    @survives_damage(retry=True)
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
            with (
                store_errors("salvage failed", on_disk_full=_refused_disk_full),
                self._cache.transact(),
            ):
                for record in queued:
                    new_id = stored_int(self._cache.incr(COUNTER_KEY, default=FIRST_ID - 1))
                    self._cache.add(new_id, dict(record))
                for record in dead:
                    new_id = stored_int(self._cache.incr(COUNTER_KEY, default=FIRST_ID - 1))
                    self._cache.set(dead_key(new_id), dict(record))
                self._cache.set(SALVAGE_PREFIX + source, dict(progress))
            self._refresh_bytes()
            return len(queued) + len(dead)
