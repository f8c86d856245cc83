"""One lock per alert id on the event loop: the events of one alert are handled one at a
time in this process (its workers), those of different alerts side by side.

A lock exists only while someone holds or waits for it. A class rather than a generator
context manager: taken for every alert, the generator's machinery cost more than the lock
(issue 16).
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class AlertLocks:
    """``async with locks.hold(alert_id):`` — the alert's events, one at a time."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[asyncio.Lock, int]] = {}  # alert id → (lock, users)

    def hold(self, alert_id: str) -> _Hold:
        return _Hold(self, alert_id)

    def __len__(self) -> int:
        """Alerts whose lock is held or awaited."""
        return len(self._held)

    def _enter(self, alert_id: str) -> asyncio.Lock:
        lock, users = self._held.get(alert_id) or (asyncio.Lock(), 0)
        self._held[alert_id] = (lock, users + 1)
        return lock

    def _leave(self, alert_id: str) -> None:
        lock, users = self._held[alert_id]
        if users <= 1:
            del self._held[alert_id]
        else:
            self._held[alert_id] = (lock, users - 1)


class _Hold:
    __slots__ = ("_alert_id", "_lock", "_locks")

    def __init__(self, locks: AlertLocks, alert_id: str) -> None:
        self._locks = locks
        self._alert_id = alert_id
        self._lock: asyncio.Lock | None = None

    async def __aenter__(self) -> None:
        lock = self._locks._enter(self._alert_id)
        try:
            await lock.acquire()
        except BaseException:  # cancelled while waiting: no longer a user of the lock
            self._locks._leave(self._alert_id)
            raise
        self._lock = lock

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._lock is not None
        self._lock.release()
        self._locks._leave(self._alert_id)
