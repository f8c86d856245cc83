"""The series kinds: rate of change and flatline judge a run of samples, not one sample.

Each rule has its own object (it holds the samples); what of it is saved goes through
``dump`` and ``load`` in the keys every rule's saved data carries (``flat_due``, ``prev``,
``anchor``).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Final

from edge_agent.readings import Value
from edge_agent.rules.conditions import (
    CLEAR,
    FLATLINE,
    HOLD,
    RATE,
    TRIP,
    Condition,
    SeriesHost,
    is_number,
)

if TYPE_CHECKING:
    from edge_agent.rules.compiled import CompiledRule

WINDOW_SAMPLES: Final = 600
"""Samples a rate window keeps at most (one per window/600): enough for the slope, bounded
whatever the poll rate."""


class Rate(Condition):
    """Rate of change ``above`` a limit, per ``per``: between two samples, or across a
    window (the oldest sample within it)."""

    __slots__ = (
        "inclusive",
        "prev_time",
        "prev_value",
        "rate_limit",
        "rate_per",
        "rate_sign",
        "rate_window",
        "window_samples",
    )
    kind = RATE
    series = True

    def __init__(
        self, above: float, per: int, direction: str, window: int, inclusive: bool
    ) -> None:
        self.rate_limit = above
        self.rate_per = per
        # +1 rising, -1 falling, 0 both: the rate is multiplied by it (0: its magnitude).
        self.rate_sign = {"rising": 1, "falling": -1}.get(direction, 0)
        self.rate_window = window
        self.inclusive = inclusive
        # Samples of the window, thinned to at most WINDOW_SAMPLES + 1 (bounded memory
        # whatever the poll rate); not saved: a restart starts the window anew.
        self.window_samples: deque[tuple[int, float]] | None = deque() if window else None
        self.prev_value: float | None = None
        self.prev_time: int | None = None

    def judge(self, rule: CompiledRule, t: int, value: Value, host: SeriesHost) -> int | None:
        if not is_number(value):
            return None
        v: float = value  # type: ignore[assignment]
        since = self._window_start(t, v) if self.window_samples is not None else self._previous(t)
        if since is None:
            self.prev_value, self.prev_time = v, t
            host.soft_dirty = True
            return None
        previous, previous_time = since
        # Computed before this sample becomes the previous one: a rate that raises leaves
        # the series as it was.
        rate = (v - previous) * self.rate_per / (t - previous_time)
        self.prev_value, self.prev_time = v, t
        host.soft_dirty = True
        if rate - rate != 0.0:
            # Not finite (a jump near the float limit in a tiny interval): this rule's
            # fault (see the engine's ``_rule_failed``), not a value no state file could hold.
            raise OverflowError("rate of change is not a finite number")
        rule.held = rate
        size = rate * self.rate_sign if self.rate_sign else abs(rate)
        if size >= self.rate_limit if self.inclusive else size > self.rate_limit:
            return TRIP
        if size < self.rate_limit:
            return CLEAR
        return HOLD

    def _previous(self, t: int) -> tuple[float, int] | None:
        """The sample before ``t`` to take the rate from (None: this one only starts it)."""
        previous, previous_time = self.prev_value, self.prev_time
        if previous is None or previous_time is None or t <= previous_time:
            return None
        return previous, previous_time

    def _window_start(self, t: int, value: float) -> tuple[float, int] | None:
        """The oldest sample within the window to take the slope from, with ``(t, value)``
        added to the window; None while the samples span less than half the window (too
        short to tell a slope from one register step)."""
        samples = self.window_samples
        assert samples is not None
        window = self.rate_window
        while samples and t - samples[0][0] > window:
            samples.popleft()
        oldest = samples[0] if samples else None
        if not samples or t - samples[-1][0] >= window // WINDOW_SAMPLES:
            samples.append((t, value))
        if oldest is None or 2 * (t - oldest[0]) < window:
            return None
        return oldest[1], oldest[0]

    def limit(self, held: Value, peak: Value) -> Value:
        return self.rate_limit

    def further(self, value: float, than: float) -> bool:
        if self.rate_sign:
            return value * self.rate_sign > than * self.rate_sign
        return abs(value) > abs(than)

    def reset(self) -> None:
        self.prev_value = self.prev_time = None
        if self.window_samples is not None:
            self.window_samples.clear()

    def gap(self) -> bool:
        # A rate is never taken across a gap (65 °C before a PLC outage and 55 °C after it is
        # no rate of change): the next good sample only starts the rate again.
        if self.window_samples:
            self.window_samples.clear()
        if self.prev_value is not None:
            self.prev_value = self.prev_time = None
            return True
        return False

    def is_initial(self) -> bool:
        return self.prev_time is None

    def dump(self) -> dict[str, Any]:
        prev = None if self.prev_time is None else [self.prev_value, self.prev_time]
        return {"flat_due": None, "prev": prev, "anchor": None}

    def load(self, saved: dict[str, Any], *, exact: bool, normal: bool) -> None:
        prev = saved["prev"]
        self.prev_value, self.prev_time = (None, None) if prev is None else (prev[0], prev[1])
        if not exact:
            # A save made while running may be older than the last samples, which move the
            # previous sample without a save: rather than a false rate, start afresh.
            self.prev_value = self.prev_time = None


class Flatline(Condition):
    """The value stays within ``tolerance`` of the run's first sample for ``for``: trips at
    that deadline (a flatline trips on time, not at the next sample)."""

    __slots__ = ("anchor_time", "anchor_value", "flat_due", "flat_for", "flat_gen", "tolerance")
    kind = FLATLINE
    series = True

    def __init__(self, duration: int, tolerance: float) -> None:
        self.flat_for = duration
        self.tolerance = tolerance
        self.flat_due: int | None = None
        # Tells the current flatline deadline in the engine's heap from stale ones.
        self.flat_gen = 0
        self.anchor_value: float | None = None
        self.anchor_time: int | None = None

    def judge(self, rule: CompiledRule, t: int, value: Value, host: SeriesHost) -> int | None:
        if not is_number(value):
            return None
        v: float = value  # type: ignore[assignment]
        rule.held = v
        anchor = self.anchor_value
        if anchor is None or self.anchor_time is None or abs(v - anchor) > self.tolerance:
            self.anchor_value, self.anchor_time = v, t
            host.set_flat_due(rule, self, t + self.flat_for)
            host.soft_dirty = True
            return CLEAR
        if t - self.anchor_time >= self.flat_for:
            return TRIP
        return CLEAR

    def limit(self, held: Value, peak: Value) -> Value:
        return self.tolerance

    def reset(self) -> None:
        self.flat_due = None
        self.flat_gen = 0
        self.anchor_value = self.anchor_time = None

    def fresh_again(self) -> None:
        # A gap in the data breaks a flatline run: the next sample starts anew.
        self.anchor_value = self.anchor_time = self.flat_due = None

    def is_initial(self) -> bool:
        return self.anchor_time is None

    def dump(self) -> dict[str, Any]:
        anchor = None if self.anchor_time is None else [self.anchor_value, self.anchor_time]
        return {"flat_due": self.flat_due, "prev": None, "anchor": anchor}

    def load(self, saved: dict[str, Any], *, exact: bool, normal: bool) -> None:
        self.flat_due = saved["flat_due"]
        anchor = saved["anchor"]
        self.anchor_value, self.anchor_time = (
            (None, None) if anchor is None else (anchor[0], anchor[1])
        )
        if not exact and normal:
            # A save made while running may be older than the last samples (they move the
            # run without a save): rather than a false "stuck", start the run afresh.
            self.anchor_value = self.anchor_time = self.flat_due = None
