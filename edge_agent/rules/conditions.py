"""The six condition kinds: what one good sample says about a rule's condition.

Each kind is a small class holding its own parameters (and, for rate and flatline, the
series it judges). :meth:`Condition.judge` answers TRIP, HOLD or CLEAR for a sample; the
engine turns answers into states and events. The limit kinds (high, low, band, equals)
hold no state, so rules with the same parameters share one object (see ``shared``).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol

from edge_agent.config.models import Rule
from edge_agent.readings import Value

if TYPE_CHECKING:
    from edge_agent.rules.compiled import CompiledRule

# Condition kinds.
HIGH: Final = 1
LOW: Final = 2
BAND: Final = 3
RATE: Final = 4
FLATLINE: Final = 5
EQUALS: Final = 6

# What one sample says about the condition.
TRIP: Final = 1
HOLD: Final = 0  # in the deadband: neither trips nor clears
CLEAR: Final = -1

# The hot-path checks (``CompiledRule.fast``): the comparison with ``fast_limit`` that
# trips a NORMAL ungated high or low rule (inclusive or not), or none (0: judge every sample).
ABOVE: Final = 1
BELOW: Final = 2
AT_OR_ABOVE: Final = 3
AT_OR_BELOW: Final = 4

WINDOW_SAMPLES: Final = 600
"""Samples a rate window keeps at most (one per window/600): enough for the slope, bounded
whatever the poll rate."""


def is_number(value: object) -> bool:
    """A finite int or float (bool and str are not numbers to a limit)."""
    cls = value.__class__
    if cls is int:
        return True
    if cls is float:
        return bool(value - value == 0.0)  # type: ignore[operator]
    return False


def same_value(value: Value, target: Value) -> bool:
    """``equals:`` comparison: strings match strings, numbers and bools match by value."""
    if isinstance(value, str) or isinstance(target, str):
        return isinstance(value, str) and isinstance(target, str) and value == target
    return value == target


class SeriesHost(Protocol):
    """What a series condition asks of the engine: a flatline deadline, and a note that
    saved bookkeeping moved (saved with the next transition or flush, never on its own)."""

    soft_dirty: bool

    def set_flat_due(self, rule: CompiledRule, flatline: Flatline, when: int) -> None: ...


class Condition:
    """One kind's judgement. Subclasses set ``kind`` and implement :meth:`judge`."""

    __slots__ = ()

    kind: ClassVar[int]
    # The hot-path check that suffices while the rule is NORMAL and ungated (ABOVE ...
    # AT_OR_BELOW: a sample that does not pass ``fast_limit`` changes nothing), or 0.
    fast: int = 0
    # Rate and flatline judge a series (previous samples), not one sample.
    series: ClassVar[bool] = False
    # Whether text or true/false is a wrong type for this condition.
    wants_number: ClassVar[bool] = True

    # The series state the saved rule data always carries (None for the stateless kinds).
    flat_due: int | None = None

    @property
    def fast_limit(self) -> float:
        return 0.0

    def judge(self, rule: CompiledRule, t: int, value: Value, host: SeriesHost) -> int | None:
        """TRIP, HOLD or CLEAR for one good sample, with ``rule.held`` set to what was
        measured; None when the sample gives no verdict (not a number, or the first sample
        of a rate), and ``rule.held`` is left as it was."""
        raise NotImplementedError

    def limit(self, held: Value, peak: Value) -> Value:
        """The limit reported with the rule's events."""
        raise NotImplementedError

    def further(self, value: float, than: float) -> bool:
        """Whether ``value`` is a further excursion than ``than`` (both numbers)."""
        return False

    # Series bookkeeping; nothing to do for the limit kinds.

    def reset(self) -> None:
        """Forget the series (the rule went back to its initial state)."""

    def gap(self) -> bool:
        """A bad reading or a stale spell broke the data; True if saved state changed."""
        return False

    def fresh_again(self) -> None:
        """The rule's sensor reported again after a stale spell."""

    def is_initial(self) -> bool:
        """Whether there is no series state worth saving."""
        return True

    def dump(self) -> dict[str, Any]:
        """The series state as saved rule data (``flat_due``, ``prev``, ``anchor``)."""
        return {"flat_due": None, "prev": None, "anchor": None}

    def load(self, saved: dict[str, Any], *, exact: bool, normal: bool) -> None:
        """Restore :meth:`dump` data of an unchanged rule (``exact``: saved at a clean stop;
        ``normal``: the rule is restored in NORMAL)."""


class High(Condition):
    __slots__ = ("clear_below", "fast", "high_limit", "inclusive")
    kind = HIGH

    def __init__(self, limit: float, deadband: float, inclusive: bool) -> None:
        self.high_limit = limit
        self.clear_below = limit - deadband
        self.inclusive = inclusive
        self.fast = AT_OR_ABOVE if inclusive else ABOVE

    @property
    def fast_limit(self) -> float:
        return self.high_limit

    def judge(self, rule: CompiledRule, t: int, value: Value, host: SeriesHost) -> int | None:
        if not is_number(value):
            return None  # counted where the reading arrived
        rule.held = value
        if value >= self.high_limit if self.inclusive else value > self.high_limit:  # type: ignore[operator]
            return TRIP
        if value < self.clear_below:  # type: ignore[operator]
            return CLEAR
        return HOLD

    def limit(self, held: Value, peak: Value) -> Value:
        return self.high_limit

    def further(self, value: float, than: float) -> bool:
        return value > than


class Low(Condition):
    __slots__ = ("clear_above", "fast", "inclusive", "low_limit")
    kind = LOW

    def __init__(self, limit: float, deadband: float, inclusive: bool) -> None:
        self.low_limit = limit
        self.clear_above = limit + deadband
        self.inclusive = inclusive
        self.fast = AT_OR_BELOW if inclusive else BELOW

    @property
    def fast_limit(self) -> float:
        return self.low_limit

    def judge(self, rule: CompiledRule, t: int, value: Value, host: SeriesHost) -> int | None:
        if not is_number(value):
            return None
        rule.held = value
        if value <= self.low_limit if self.inclusive else value < self.low_limit:  # type: ignore[operator]
            return TRIP
        if value > self.clear_above:  # type: ignore[operator]
            return CLEAR
        return HOLD

    def limit(self, held: Value, peak: Value) -> Value:
        return self.low_limit

    def further(self, value: float, than: float) -> bool:
        return value < than


class Band(Condition):
    """Outside ``[low, high]`` trips; back inside both deadbands clears."""

    __slots__ = ("clear_above", "clear_below", "high_limit", "inclusive", "low_limit")
    kind = BAND

    def __init__(
        self, high: float, high_deadband: float, low: float, low_deadband: float, inclusive: bool
    ) -> None:
        self.high_limit = high
        self.clear_below = high - high_deadband
        self.low_limit = low
        self.clear_above = low + low_deadband
        self.inclusive = inclusive

    def judge(self, rule: CompiledRule, t: int, value: Value, host: SeriesHost) -> int | None:
        if not is_number(value):
            return None
        rule.held = value
        v: float = value  # type: ignore[assignment]
        if self.inclusive:
            trips = v >= self.high_limit or v <= self.low_limit
        else:
            trips = v > self.high_limit or v < self.low_limit
        if trips:
            return TRIP
        if self.clear_above < v < self.clear_below:
            return CLEAR
        return HOLD

    def limit(self, held: Value, peak: Value) -> Value:
        # The side of the episode's peak, so that a clear after a jump across the band names
        # the limit the peak passed.
        side = held if peak is None else peak
        if isinstance(side, int | float) and not isinstance(side, bool):
            midpoint = (self.high_limit + self.low_limit) / 2
            return self.high_limit if side >= midpoint else self.low_limit
        return self.high_limit

    def further(self, value: float, than: float) -> bool:
        return self._excursion(value) > self._excursion(than)

    def _excursion(self, value: float) -> float:
        return max(value - self.high_limit, self.low_limit - value)


class Equals(Condition):
    __slots__ = ("target",)
    kind = EQUALS
    wants_number = False

    def __init__(self, target: Value) -> None:
        self.target = target

    def judge(self, rule: CompiledRule, t: int, value: Value, host: SeriesHost) -> int | None:
        rule.held = value
        return TRIP if same_value(value, self.target) else CLEAR

    def limit(self, held: Value, peak: Value) -> Value:
        return self.target


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


def make_condition(rule: Rule, shared: dict[tuple[Any, ...], Condition] | None = None) -> Condition:
    """The condition of ``rule``. The stateless kinds are taken from ``shared`` (keyed by
    their parameters) when an equal one is there, and put there otherwise."""
    inclusive = rule.inclusive
    if rule.rate is not None:
        rate = rule.rate
        return Rate(rate.above, rate.per, rate.direction, rate.window or 0, inclusive)
    if rule.flatline is not None:
        return Flatline(rule.flatline.for_, rule.flatline.tolerance)
    condition: Condition
    if rule.high is not None and rule.low is not None:
        high, low = rule.high, rule.low
        condition = Band(high.limit, high.deadband, low.limit, low.deadband, inclusive)
        params: tuple[Value, ...] = (high.limit, high.deadband, low.limit, low.deadband)
    elif rule.high is not None:
        condition = High(rule.high.limit, rule.high.deadband, inclusive)
        params = (rule.high.limit, rule.high.deadband)
    elif rule.low is not None:
        condition = Low(rule.low.limit, rule.low.deadband, inclusive)
        params = (rule.low.limit, rule.low.deadband)
    else:
        condition = Equals(rule.equals)
        params = (rule.equals,)
    if shared is None:
        return condition
    # Keyed by repr: 1, 1.0 and True are equal but not reported alike (nor are 0.0 and -0.0).
    key = (condition.kind, inclusive, *(repr(value) for value in params))
    return shared.setdefault(key, condition)
