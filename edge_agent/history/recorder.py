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
import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar

from edge_agent.common.time_units import NS_PER_MINUTE
from edge_agent.config.models import History
from edge_agent.history.store import FILE_NAME, HistoryCorrupt, HistoryError, HistoryStore, Row
from edge_agent.readings import Quality, Reading, Value

log = logging.getLogger(__name__)

T = TypeVar("T")

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
        # Every store call runs in this one thread, in order (see run's ``finally``).
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history")
        self._last: dict[str, Row] = {}  # each sensor's last row kept

    def offer(self, readings: Sequence[Reading], wall_ns: int) -> None:
        """Keep what changed (or is due for a heartbeat). Called on the event loop."""
        # ≈ 10,000 readings a second from a big subscription: the attributes and methods
        # are bound once per batch, and the row kept is a plain tuple that is also the
        # sensor's last (a frozen dataclass and a second tuple cost half the time here).
        last_of, buffer = self._last, self._buffer
        keep = buffer.append
        for reading in readings:
            sensor, value, quality = reading.sensor_id, reading.value, reading.quality
            last = last_of.get(sensor)
            if last is not None:
                old = last.value
                # The common case first, inline: the same value and quality again within
                # the heartbeat is no change (``_changed`` costs ≈ 1.2 µs, this ≈ 0.15).
                if (
                    old == value
                    and last.quality is quality
                    and wall_ns - last.time_ns < HEARTBEAT_NS
                ):
                    continue
                # A float beyond the deadband is a change whatever else: ``_changed`` says
                # so too, and is left for the rest (NaN, infinities, other types).
                if not (
                    type(old) is float
                    and type(value) is float
                    and abs(value - old) > RELATIVE_DEADBAND * (abs(old) if abs(old) > 1.0 else 1.0)
                ) and not _changed((old, last.quality, last.time_ns), reading, wall_ns):
                    continue
            row = last_of[sensor] = Row(sensor, wall_ns, value, quality)
            if len(buffer) >= MAX_BUFFERED:
                self.dropped += 1
                continue
            keep(row)

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
                    await self._in_thread(store.close)
                    store = await self._open()
                    if store is None:
                        continue
                batch, self._buffer = self._buffer, []
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_INTERVAL_S
                    await self._call(store.prune, time.time_ns())
                written = bool(batch) and await self._call(self._write, store, batch)
                if written and self.failed is not None:  # only a write proves the disk takes it
                    log.info("History is written again.", extra={"file": str(self.path)})
                    self.failed = None
                if self.failed is not None:
                    await self._in_thread(store.close)
                    store = None
                    await asyncio.sleep(RETRY_AFTER_FAILURE_S)
        finally:
            # Queued behind a write a cancel left running in the store's thread: one
            # connection is never used from two threads at once (that crashed at a stop).
            left, self._buffer = self._buffer, []
            if store is not None:
                try:
                    with contextlib.suppress(HistoryError, OSError):  # _write counted it
                        await self._in_thread(self._write, store, left)
                finally:
                    await self._in_thread(store.close)
            else:
                self.dropped += len(left)
            self._thread.shutdown(wait=False)

    async def _open(self) -> HistoryStore | None:
        try:
            store = await self._in_thread(self._open_store)
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

    def _write(self, store: HistoryStore, batch: list[Row]) -> None:
        """Append and count, in the store's thread: a write a cancel left running is still
        counted, written or dropped."""
        try:
            store.append(batch)
        except (HistoryError, OSError):
            self.dropped += len(batch)
            raise
        self.written += len(batch)

    async def _in_thread(self, method: Callable[..., T], *args: object) -> T:
        """``method`` in the store's own thread, one call after another."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(method, *args))

    async def _call(self, method: Callable[..., object], *args: object) -> bool:
        try:
            await self._in_thread(method, *args)
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
        if isinstance(value, int) or isinstance(new, int):
            # Exact (bool included), never through a float: an integer from the wire may
            # be beyond a float's range, and an integer has no float noise to ignore.
            return value != new
        if not (math.isfinite(value) and math.isfinite(new)):
            return value != new and not (math.isnan(value) and math.isnan(new))
        return abs(new - value) > RELATIVE_DEADBAND * max(1.0, abs(value))
    return value != new
