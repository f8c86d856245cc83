"""Fault injection for the emulator: what a flaky MaintainX (or network) does.

All rates are shares of requests (0..1). Change them at any time, also while requests are
running; ``injected`` counts what was done so a test can prove the faults happened.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FaultPlan:
    """What to do to one request."""

    latency_s: float = 0.0
    error_500: bool = False
    rate_limit_reset_s: float | None = None  # a forced 429 with this reset
    drop_before: bool = False
    stall_after_store_s: float | None = None  # store, then answer nothing for this long
    drop_after_store: bool = False
    forced: tuple[int, Any] | None = None  # answer this (status, body), store nothing


@dataclass
class Faults:
    """The emulator's fault knobs.

    - ``latency_s``: added to every request.
    - ``error_rate``: share answered 500 before anything is stored.
    - ``burst_429_rate``: share of requests that start a burst of 429s lasting
      ``burst_429_s`` (every request in it is refused, with the reset counting down).
    - ``timeout_after_store_rate``: share of writes (POST/PATCH) that are applied and then
      answered with silence for ``stall_s`` and a closed connection (set ``stall_s`` above the
      client's timeout).
    - ``drop_rate``: share of requests whose connection is closed before anything happens.
    - ``drop_after_store_rate``: share of writes applied, then the connection closed.
    - ``echo_headers``: every error answer (4xx, 5xx) carries the request's headers in
      ``requestHeaders``, first in the body, as some proxies and debug builds do: the API
      key comes back in an error body (the agent must never show it).
    - :meth:`force_status`: the next N requests answered with a given status and body
      (a proxy's 408 or 413, a 400 naming no field...) before anything is stored.
    """

    latency_s: float = 0.0
    error_rate: float = 0.0
    burst_429_rate: float = 0.0
    burst_429_s: float = 1.0
    timeout_after_store_rate: float = 0.0
    stall_s: float = 2.0
    drop_rate: float = 0.0
    drop_after_store_rate: float = 0.0
    echo_headers: bool = False
    seed: int | None = None
    injected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._burst_until = 0.0
        self._forced: list[tuple[int, Any]] = []

    def reset(self) -> None:
        """Turn every fault off (the counters stay)."""
        with self._lock:
            self.latency_s = self.error_rate = self.burst_429_rate = 0.0
            self.timeout_after_store_rate = self.drop_rate = self.drop_after_store_rate = 0.0
            self.echo_headers = False
            self._burst_until = 0.0
            self._forced.clear()

    def force_status(self, status: int, body: Any = None, count: int = 1) -> None:
        """Answer the next ``count`` requests (that carry a known key) with ``status`` and
        ``body``, storing nothing."""
        with self._lock:
            self._forced.extend([(status, body)] * count)

    def force_429(self, seconds: float) -> None:
        """Refuse every request with 429 for the next ``seconds``."""
        with self._lock:
            self._burst_until = time.monotonic() + seconds

    def plan(self, method: str) -> FaultPlan:
        """Draw the faults for one request."""
        with self._lock:
            plan = FaultPlan(latency_s=self.latency_s)
            if self._forced:
                plan.forced = self._forced.pop(0)
                self.injected[f"forced_{plan.forced[0]}"] += 1
                return plan
            now = time.monotonic()
            if now >= self._burst_until and self._chance(self.burst_429_rate):
                self._burst_until = now + self.burst_429_s
                self.injected["burst_429"] += 1
            if now < self._burst_until:
                plan.rate_limit_reset_s = self._burst_until - now
                self.injected["429"] += 1
                return plan
            if self._chance(self.drop_rate):
                plan.drop_before = True
                self.injected["drop"] += 1
            elif self._chance(self.error_rate):
                plan.error_500 = True
                self.injected["500"] += 1
            elif method in ("POST", "PATCH"):
                if self._chance(self.timeout_after_store_rate):
                    plan.stall_after_store_s = self.stall_s
                    self.injected["timeout_after_store"] += 1
                elif self._chance(self.drop_after_store_rate):
                    plan.drop_after_store = True
                    self.injected["drop_after_store"] += 1
            return plan

    def _chance(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate
