"""Client-side pacing from MaintainX's ``X-Rate-Limit-*`` headers.

MaintainX sends ``X-Rate-Limit-Limit``, ``-Remaining`` and ``-Reset`` (seconds left in the
current window) on every response and no ``Retry-After``. The pacer spends the first half of
a window's budget freely (bursts stay fast), then spreads what is left evenly over the time
left, and always keeps one request in reserve, so that once the limit is known the server
never has to answer 429. Before the first response it paces at the configured rate.

A pacer may be given a ``share`` of the budget: it then leaves the rest of every window to
the other clients of the same key (the headers count the key's requests, not this
client's). The plant-data forwarder's pacer takes 40 %, so a backlog of plant data never
starves the alert forwarder that shares its key in direct mode.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Mapping

RESERVE = 1
"""Requests left unspent in every window, so a clock skew never turns into a 429."""

RESET_MARGIN_S = 0.05
"""Added to every advertised reset: the server's window must really be over."""


def parse_rate_headers(headers: Mapping[str, str]) -> tuple[int, int, float] | None:
    """``(limit, remaining, reset_s)`` from a response's headers, or None if absent/garbled."""
    try:
        limit = int(headers["x-rate-limit-limit"])
        remaining = int(headers["x-rate-limit-remaining"])
        reset_s = float(headers["x-rate-limit-reset"])
    except (KeyError, ValueError):
        return None
    if limit < 1 or remaining < 0 or not math.isfinite(reset_s) or reset_s < 0:
        return None
    return limit, remaining, reset_s


class RatePacer:
    """Decides when the next request may leave. One per API key (i.e. per client)."""

    def __init__(
        self,
        default_per_min: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[float, float], float] = random.uniform,
        share: float = 1.0,
    ) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share must be in (0, 1], not {share!r}")
        self.share = share
        self._clock = clock
        self._jitter = jitter
        self._default_interval_s = 60.0 / max(1.0, default_per_min * share)
        self.limit: int | None = None
        self.remaining: int | None = None
        self._reset_at = 0.0
        self._window_s: float | None = None
        self._blocked_until = 0.0
        self._last_send = -math.inf
        self._lock = asyncio.Lock()
        self.waits = 0
        self.waited_s = 0.0

    @property
    def known(self) -> bool:
        """True once a response has told us the limit."""
        return self.limit is not None

    def _others(self, limit: int) -> int:
        """Requests of every window left to the key's other clients."""
        return math.floor(limit * (1.0 - self.share))

    def _delay(self, now: float) -> float:
        if now < self._blocked_until:
            return self._blocked_until - now
        if self.limit is None or self.remaining is None:
            return self._last_send + self._default_interval_s - now
        if now >= self._reset_at:
            # The window we knew about is over: assume a fresh one until a response says more.
            self.remaining = self.limit
            self._reset_at = now + (self._window_s or 60.0)
            return 0.0
        others = self._others(self.limit)
        mine = self.remaining - others  # what is left of this pacer's share
        if mine <= RESERVE:
            return self._reset_at - now
        if mine > (self.limit - others) // 2:
            return 0.0
        spread_s = (self._reset_at - now) / (mine - RESERVE)
        return self._last_send + spread_s - now

    async def acquire(self) -> None:
        """Wait until a request may be sent, then count it as sent."""
        async with self._lock:
            while True:
                delay = self._delay(self._clock())
                if delay <= 0:
                    break
                self.waits += 1
                self.waited_s += delay
                await asyncio.sleep(delay)
            self._last_send = self._clock()
            if self.remaining is not None:
                self.remaining -= 1

    def observe(self, headers: Mapping[str, str], status: int) -> float | None:
        """Learn from a response. For a 429 returns how long to wait (reset plus jitter) and
        blocks every sender until then."""
        parsed = parse_rate_headers(headers)
        now = self._clock()
        reset_s: float | None = None
        if parsed is not None:
            limit, remaining, reset_s = parsed
            self.limit = limit
            self.remaining = remaining
            self._reset_at = now + reset_s + RESET_MARGIN_S
            self._window_s = max(self._window_s or 0.0, reset_s)
        if status != 429:
            return None
        wait_s = (reset_s if reset_s is not None else 1.0) + RESET_MARGIN_S
        wait_s += self._jitter(0.0, min(1.0, 0.1 * wait_s + 0.05))
        self._blocked_until = max(self._blocked_until, now + wait_s)
        if self.remaining is not None:
            self.remaining = 0
        return wait_s
