"""MaintainX's rate limit as the emulator enforces it: a fixed window per API key.

Every answer carries ``X-Rate-Limit-Limit``, ``-Remaining`` and ``-Reset`` (whole seconds
left in the window, rounded up). A request over the limit gets 429 and is not counted.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        return {
            "X-Rate-Limit-Limit": str(self.limit),
            "X-Rate-Limit-Remaining": str(self.remaining),
            "X-Rate-Limit-Reset": str(self.reset_s),
        }


class WindowLimiter:
    """``limit`` requests per ``window_s`` per key; a window opens at the first request after
    the previous one ended. ``enabled=False`` counts nothing and never refuses."""

    def __init__(
        self,
        limit: int = 100,
        window_s: float = 60.0,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.enabled = enabled
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (window end, used)

    def configure(self, limit: int, window_s: float, *, enabled: bool = True) -> None:
        with self._lock:
            self.limit, self.window_s, self.enabled = limit, window_s, enabled
            self._windows.clear()

    def check(self, key: str) -> RateDecision:
        with self._lock:
            if not self.enabled:
                return RateDecision(True, self.limit, self.limit, math.ceil(self.window_s))
            now = self._clock()
            end, used = self._windows.get(key, (0.0, 0))
            if now >= end:
                end, used = now + self.window_s, 0
            reset_s = max(1, math.ceil(end - now))
            if used >= self.limit:
                self._windows[key] = (end, used)
                return RateDecision(False, self.limit, 0, reset_s)
            used += 1
            self._windows[key] = (end, used)
            return RateDecision(True, self.limit, self.limit - used, reset_s)

    def peek(self, key: str) -> RateDecision:
        """The headers for an answer that is not counted (a 401, a forced 429)."""
        with self._lock:
            now = self._clock()
            end, used = self._windows.get(key, (0.0, 0))
            if not self.enabled or now >= end:
                return RateDecision(True, self.limit, self.limit, math.ceil(self.window_s))
            return RateDecision(True, self.limit, self.limit - used, max(1, math.ceil(end - now)))
