"""Exponential backoff with full jitter, for reconnects and for skipping a silent device.

Full jitter (a delay drawn uniformly from ``[0, min(max, initial × 2^n)]``) spreads the
retries of a hundred agents that lost the same network at the same moment, where a fixed
doubling would bring them all back in step (AWS Architecture Blog, "Exponential Backoff
And Jitter").
"""

from __future__ import annotations

import logging
import random

from edge_agent.common.time_units import NS_PER_S
from edge_agent.config.models import BackoffSettings

# While a connection is down, a connect is tried at least this often (or once per poll
# when the poll is slower): a connect refused costs one packet, and a PLC back from a
# restart must not wait out a long read backoff before anybody notices.
PROBE_EVERY_S = 5.0


def probe_cap_s(poll_s: float) -> float:
    """The longest wait before the next connect while disconnected, for a source that
    tries at its poll boundaries: the first boundary after the wait then comes within
    ``max(poll_s, PROBE_EVERY_S)`` of the last attempt."""
    return max(poll_s, PROBE_EVERY_S) - poll_s


class Backoff:
    """Delays that double from ``initial_s`` up to ``max_s``, each drawn with full jitter.

    ``next_delay()`` returns the delay before the next attempt and moves one step up;
    ``reset()`` goes back to the first step after a success.
    """

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if initial_s <= 0 or max_s < initial_s:
            raise ValueError(f"backoff needs 0 < initial ({initial_s}) <= max ({max_s})")
        self.initial_s = initial_s
        self.max_s = max_s
        self.attempts = 0
        self._rng = rng or random.Random()

    @classmethod
    def from_config(cls, config: BackoffSettings, rng: random.Random | None = None) -> Backoff:
        """Build from a connection's ``backoff:`` section (durations in ns)."""
        return cls(config.initial / NS_PER_S, config.max / NS_PER_S, rng)

    def ceiling(self) -> float:
        """The largest delay the next call may return."""
        # Cap the exponent: 2**attempts overflows a float after ~1000 failures.
        return min(self.max_s, self.initial_s * 2.0 ** min(self.attempts, 62))

    def next_delay(self) -> float:
        """The delay before the next attempt, in seconds; each call moves one step up."""
        delay = self._rng.uniform(0.0, self.ceiling())
        self.attempts += 1
        return delay

    def next_delay_within(self, cap_s: float) -> float:
        """``next_delay()``, but never above ``cap_s``: a capped delay is drawn from
        ``[cap_s / 2, cap_s]`` so that agents probing the same server stay out of step."""
        delay = self.next_delay()
        if delay <= cap_s:
            return delay
        return self._rng.uniform(cap_s / 2, cap_s)

    def reset(self) -> None:
        """Back to the first step (call after a success)."""
        self.attempts = 0


# While a connection stays down, its warning is repeated this often (the attempts between
# log at debug): a connect every 5 s would write thousands of warnings a day otherwise.
OUTAGE_REMINDER_S = 600.0


class OutageLog:
    """Whether a failed connect is worth a warning: the first of an outage, then one
    reminder every :data:`OUTAGE_REMINDER_S`; :meth:`ended` when connected again."""

    def __init__(self) -> None:
        self._warned_at: float | None = None
        self.failures = 0  # failed attempts in the current outage

    def level(self, now: float) -> int:
        """The level to log this failure at (``logging.WARNING`` or ``logging.DEBUG``)."""
        self.failures += 1
        if self._warned_at is None or now - self._warned_at >= OUTAGE_REMINDER_S:
            self._warned_at = now
            return logging.WARNING
        return logging.DEBUG

    def ended(self) -> None:
        self._warned_at = None
        self.failures = 0
