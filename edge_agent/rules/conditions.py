"""Condition kinds: what one good sample says about a rule's condition.

Each kind is a small class holding its own parameters (and, for the series kinds in
``series.py``, the samples it judges). :meth:`Condition.judge` answers TRIP, HOLD or CLEAR
for a sample; the transitions turn answers into states and events. The limit kinds here
(high, low, band, equals) hold no state, so rules with equal parameters share one object
(see ``compiled.make_condition``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol

from edge_agent.readings import Value

if TYPE_CHECKING:
    from edge_agent.rules.compiled import CompiledRule
    from edge_agent.rules.series import Flatline

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
        measured; None when the sample gives no verdict (not a number, or a rate with no
        earlier sample to measure from), and ``rule.held`` is left as it was."""
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
