"""Readings → the history file, off the rules' path.

:meth:`HistoryRecorder.offer` is called with every batch a source delivers: it keeps a
reading only when its value or quality changed (beyond a tiny deadband) or a minute passed
(a heartbeat, so a flat line is still a line), and appends it to a bounded buffer: no I/O,
no waiting. :meth:`HistoryRecorder.run` writes the buffer once a second from a worker thread
and prunes every ten minutes. A write that fails (a full disk) stops the history, logged
once, and it tries again a minute later; the rules never wait for it. A full buffer drops
the newest readings, counted.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from edge_agent.common.time_units import NS_PER_MINUTE
from edge_agent.config.models import History
from edge_agent.history.store import FILE_NAME, HistoryCorrupt, HistoryError, HistoryStore, Row
from edge_agent.readings import Quality, Reading, Value

log = logging.getLogger(__name__)

WRITE_INTERVAL_S: Final = 1.0
PRUNE_INTERVAL_S: Final = 600.0
RETRY_AFTER_FAILURE_S: Final = 60.0
HEARTBEAT_NS: Final = NS_PER_MINUTE
MAX_BUFFERED: Final = 50_000
RELATIVE_DEADBAND: Final = 1e-9
"""Changes smaller than this share of the value (floating-point noise) are no change."""


class HistoryRecorder:
    def __init__(self, state_dir: Path, config: History) -> None:
        self.path = state_dir / FILE_NAME
        self.config = config
        self.written = 0
        self.dropped = 0
        self.failed: str | None = None  # why the history is stopped, while it is
        self._buffer: list[Row] = []
        self._last: dict[str, tuple[Value, Quality, int]] = {}

    def offer(self, readings: Sequence[Reading], wall_ns: int) -> None:
        """Keep what changed (or is due for a heartbeat). Called on the event loop."""
        for reading in readings:
            last = self._last.get(reading.sensor_id)
            if last is not None and not _changed(last, reading, wall_ns):
                continue
            self._last[reading.sensor_id] = (reading.value, reading.quality, wall_ns)
            if len(self._buffer) >= MAX_BUFFERED:
                self.dropped += 1
                continue
            self._buffer.append(Row(reading.sensor_id, wall_ns, reading.value, reading.quality))

    async def run(self) -> None:
        """Write and prune until cancelled; only a bug ends it (and then the agent)."""
        store: HistoryStore | None = None
        next_prune = time.monotonic()
        try:
            while True:
                await asyncio.sleep(WRITE_INTERVAL_S)
                if store is None:
                    store = await self._open()
                    if store is None:
                        continue
                if not self.path.exists():  # deleted under us: readers would never see it
                    store.close()
                    store = await self._open()
                    if store is None:
                        continue
                batch, self._buffer = self._buffer, []
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_INTERVAL_S
                    await self._call(store.prune, time.time_ns())
                if batch and await self._call(store.append, batch):
                    self.written += len(batch)
                    if self.failed is not None:  # only a write proves the disk takes it
                        log.info("History is written again.", extra={"file": str(self.path)})
                        self.failed = None
                elif batch:
                    self.dropped += len(batch)
                if self.failed is not None:
                    store.close()
                    store = None
                    await asyncio.sleep(RETRY_AFTER_FAILURE_S)
        finally:
            left, self._buffer = self._buffer, []
            if store is not None:
                try:
                    await asyncio.to_thread(store.append, left)
                    self.written += len(left)
                except HistoryError:
                    self.dropped += len(left)
                store.close()
            else:
                self.dropped += len(left)

    async def _open(self) -> HistoryStore | None:
        try:
            store = await asyncio.to_thread(self._open_store)
        except HistoryError as exc:
            self._failed(str(exc))
            self.dropped += len(self._buffer)
            self._buffer = []
            await asyncio.sleep(RETRY_AFTER_FAILURE_S)
            return None
        return store

    def _open_store(self) -> HistoryStore:
        """The store; a file that is not a database is set aside (``.corrupt``, for a look)
        and a new one begun: retrying it would stop the history for good."""
        try:
            return HistoryStore(self.path, self.config.keep, self.config.max_bytes)
        except HistoryCorrupt as exc:
            aside = self.path.with_name(f"{FILE_NAME}.corrupt")
            log.warning(
                "The history file is not a database: set aside, a new one begun.",
                extra={"file": str(aside), "error": str(exc)},
            )
            try:
                self.path.replace(aside)
                for suffix in ("-wal", "-shm"):
                    self.path.with_name(f"{FILE_NAME}{suffix}").unlink(missing_ok=True)
            except OSError as error:
                raise HistoryError(f"{self.path}: cannot set aside: {error}") from error
        return HistoryStore(self.path, self.config.keep, self.config.max_bytes)

    async def _call(self, method: Callable[..., object], *args: object) -> bool:
        try:
            await asyncio.to_thread(method, *args)
        except (HistoryError, OSError) as exc:
            self._failed(str(exc))
            return False
        return True

    def _failed(self, reason: str) -> None:
        if self.failed is None:
            log.error(
                "History stopped (the rules go on); trying again every minute.",
                extra={"file": str(self.path), "error": reason},
            )
        self.failed = reason


def _changed(last: tuple[Value, Quality, int], reading: Reading, wall_ns: int) -> bool:
    value, quality, at_ns = last
    if quality != reading.quality or wall_ns - at_ns >= HEARTBEAT_NS:
        return True
    new = reading.value
    if isinstance(value, float | int) and isinstance(new, float | int):
        if isinstance(value, bool) or isinstance(new, bool):
            return value != new
        if not (math.isfinite(value) and math.isfinite(new)):
            return value != new and not (math.isnan(value) and math.isnan(new))
        return abs(new - value) > RELATIVE_DEADBAND * max(1.0, abs(value))
    return value != new
