"""Rules and sensors as the engine holds them: slotted objects built once from the config.

Everything the hot path reads is a plain attribute here (no pydantic model access per
reading). The dynamic state of a rule lives on the same object, so one reading touches one
dict lookup (sensor) and a few attributes per rule.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Final

from edge_agent.alerts import PRIORITY_ORDER
from edge_agent.config.models import Rule, SiteConfig
from edge_agent.readings import Value
from edge_agent.rules.events import CAUSE_CONDITION, NORMAL

# Condition kinds.
HIGH: Final = 1
LOW: Final = 2
BAND: Final = 3
RATE: Final = 4
FLATLINE: Final = 5
EQUALS: Final = 6

NEVER: Final = -(2**63)  # a sensor's last reading time before its first reading

# What one sample says about the condition.
TRIP: Final = 1
HOLD: Final = 0  # in the deadband: neither trips nor clears
CLEAR: Final = -1


class Level:
    """One escalation level: ``above`` or ``below`` a value, with a priority."""

    __slots__ = ("above", "below", "priority", "rank")

    def __init__(self, above: float | None, below: float | None, priority: str) -> None:
        self.above = above
        self.below = below
        self.priority = priority
        self.rank = PRIORITY_ORDER[priority]


class CompiledRule:
    """One rule: its definition flattened to attributes, and its live state.

    Rate and flatline rules need a few more fields; they are :class:`SeriesRule`. Here the
    same names are read-only class defaults, so a limit rule does not carry them.
    """

    __slots__ = (
        "_fingerprint",
        "active_levels",
        "alert_id",
        "base_priority",
        "cause",
        "chatter_activations",
        "chatter_times",
        "chatter_window",
        "chattering",
        "clear_above",
        "clear_below",
        "cooldown",
        "deadline",
        "episodes",
        "fast",
        "gate_open",
        "gate_sensor",
        "gate_value",
        "gen",
        "held",
        "high_limit",
        "id",
        "inclusive",
        "key",
        "kind",
        "last_activation",
        "levels",
        "low_limit",
        "notify",
        "off_delay",
        "on_delay",
        "on_stale",
        "peak",
        "pending_since",
        "priority",
        "rule",
        "sensor",
        "stale",
        "stale_after",
        "stale_alarm",
        "started",
        "state",
        "target",
    )

    # Defaults for the fields only SeriesRule stores.
    rate_per: int = 0
    rate_sign: int = 0
    rate_window: int = 0
    window_samples: deque[tuple[int, float]] | None = None
    flat_for: int = 0
    tolerance: float = 0.0
    flat_due: int | None = None
    flat_gen: int = 0
    prev_value: float | None = None
    prev_time: int | None = None
    anchor_value: float | None = None
    anchor_time: int | None = None

    def __init__(self, key: int, rule: Rule, config: SiteConfig) -> None:
        self.key = key
        self.rule = rule
        self.id = rule.id
        self.sensor = rule.sensor
        self._fingerprint: str | None = None
        self.inclusive = rule.inclusive
        self.on_delay = rule.on_delay
        self.off_delay = rule.off_delay
        self.cooldown = rule.cooldown
        self.base_priority = rule.priority.value
        self.on_stale = rule.on_stale.value
        self.stale_after = config.stale_after_ns(rule)
        chattering = rule.chattering or config.defaults.chattering
        self.chatter_activations = chattering.activations
        self.chatter_window = chattering.window
        self.levels = tuple(
            Level(level.above, level.below, level.priority.value) for level in rule.escalate
        )
        self.high_limit = 0.0
        self.low_limit = 0.0
        self.clear_below = 0.0
        self.clear_above = 0.0
        self.target: Value = None
        if rule.high is not None and rule.low is not None:
            self.kind = BAND
        elif rule.high is not None:
            self.kind = HIGH
        elif rule.low is not None:
            self.kind = LOW
        elif rule.rate is not None:
            self.kind = RATE
            self.high_limit = rule.rate.above
            self.clear_below = rule.rate.above
        elif rule.flatline is not None:
            self.kind = FLATLINE
        else:
            self.kind = EQUALS
            self.target = rule.equals
        if rule.high is not None:
            self.high_limit = rule.high.limit
            self.clear_below = rule.high.limit - rule.high.deadband
        if rule.low is not None:
            self.low_limit = rule.low.limit
            self.clear_above = rule.low.limit + rule.low.deadband
        if rule.only_when is not None:
            self.gate_sensor: str | None = rule.only_when.sensor
            self.gate_value: Value = rule.only_when.equals
            self.gate_open = False
        else:
            self.gate_sensor = None
            self.gate_value = None
            self.gate_open = True
        self.reset()
        self.last_activation: int | None = None
        # Episodes this rule has opened, ever (persisted): the next one's number names its
        # alert id, so no clock value can make two episodes share an id.
        self.episodes = 0
        self.chatter_times: list[int] | None = None
        self.chattering = False

    @property
    def fingerprint(self) -> str:
        """Changes when anything that decides this rule's behaviour changes (computed when
        first needed: most rules never need it)."""
        if self._fingerprint is None:
            text = (
                f"{self.rule.model_dump_json(by_alias=True)}|{self.stale_after}|"
                f"{self.chatter_activations}|{self.chatter_window}"
            )
            self._fingerprint = hashlib.sha256(text.encode()).hexdigest()[:16]
        return self._fingerprint

    def reset(self) -> None:
        """Back to NORMAL with no open episode (history such as cooldown is kept)."""
        self.state = NORMAL
        self.deadline: int | None = None
        self.gen = 0
        self.pending_since: int | None = None
        self.held: Value = None
        self.peak: Value = None
        self.priority = self.base_priority
        self.alert_id: str | None = None
        self.started: int | None = None
        self.notify = True
        self.active_levels = 0
        self.cause = CAUSE_CONDITION
        self.stale = False
        self.stale_alarm = False
        self.refresh_fast()

    def refresh_fast(self) -> None:
        """``fast`` names the hot-path check that suffices in the current state: a NORMAL,
        ungated high (1) or low (2) rule only needs to know whether a sample trips."""
        if self.state == NORMAL and self.gate_sensor is None and self.kind in (HIGH, LOW):
            self.fast = self.kind
        else:
            self.fast = 0

    @property
    def limit(self) -> Value:
        """The limit reported with events (for a band: the side of the episode's peak, so
        that a clear after a jump across the band names the limit the peak passed)."""
        if self.kind in (HIGH, RATE):
            return self.high_limit
        if self.kind == LOW:
            return self.low_limit
        if self.kind == BAND:
            side = self.held if self.peak is None else self.peak
            if isinstance(side, int | float) and not isinstance(side, bool):
                midpoint = (self.high_limit + self.low_limit) / 2
                return self.high_limit if side >= midpoint else self.low_limit
            return self.high_limit
        if self.kind == FLATLINE:
            return self.tolerance
        return self.target

    def more_extreme(self, value: Value, than: Value) -> bool:
        """Whether ``value`` is a new peak for this rule's episode."""
        if than is None:
            return True
        if not isinstance(value, int | float) or not isinstance(than, int | float):
            return False
        if self.kind == HIGH:
            return value > than
        if self.kind == LOW:
            return value < than
        if self.kind == BAND:
            return _excursion(self, value) > _excursion(self, than)
        if self.kind == RATE:
            if self.rate_sign:
                return value * self.rate_sign > than * self.rate_sign
            return abs(value) > abs(than)
        return False


class SeriesRule(CompiledRule):
    """A rule that judges a series, not one sample: rate of change, flatline."""

    __slots__ = (
        "anchor_time",
        "anchor_value",
        "flat_due",
        "flat_for",
        "flat_gen",
        "prev_time",
        "prev_value",
        "rate_per",
        "rate_sign",
        "rate_window",
        "tolerance",
        "window_samples",
    )

    def __init__(self, key: int, rule: Rule, config: SiteConfig) -> None:
        self.rate_per = rule.rate.per if rule.rate is not None else 0
        # +1 rising, -1 falling, 0 both: the rate is multiplied by it (0: its magnitude).
        direction = rule.rate.direction if rule.rate is not None else "both"
        self.rate_sign = {"rising": 1, "falling": -1}.get(direction, 0)
        self.rate_window = (rule.rate.window or 0) if rule.rate is not None else 0
        # Samples of the window, thinned to at most WINDOW_SAMPLES + 1 (bounded memory
        # whatever the poll rate); not saved: a restart starts the window anew.
        self.window_samples = deque() if self.rate_window else None
        self.flat_for = rule.flatline.for_ if rule.flatline is not None else 0
        self.tolerance = rule.flatline.tolerance if rule.flatline is not None else 0.0
        super().__init__(key, rule, config)

    def reset(self) -> None:
        self.flat_due = None
        self.flat_gen = 0
        self.prev_value = None
        self.prev_time = None
        if self.window_samples is not None:
            self.window_samples.clear()
        self.anchor_value = None
        self.anchor_time = None
        super().reset()


def compile_rule(key: int, rule: Rule, config: SiteConfig) -> CompiledRule:
    """The engine's object for ``rule`` (``key`` is its position in the config)."""
    if rule.rate is not None or rule.flatline is not None:
        return SeriesRule(key, rule, config)
    return CompiledRule(key, rule, config)


def _excursion(rule: CompiledRule, value: float) -> float:
    return max(value - rule.high_limit, rule.low_limit - value)


class StaleWatcher:
    """``duration`` after a sensor's last good reading, it is stale for some purpose: the
    sensor's own ``stale`` event (``emits``) and/or the ``on_stale`` action of ``rules``."""

    __slots__ = ("duration", "emits", "fired", "key", "queued", "rules", "sensor")

    def __init__(self, key: int, sensor: SensorState, duration: int) -> None:
        self.key = key
        self.sensor = sensor
        self.duration = duration
        self.emits = False
        self.rules: tuple[CompiledRule, ...] = ()
        self.queued = False
        self.fired = False


class SensorState:
    """One sensor: its last reading time, its held good value, and what depends on it."""

    __slots__ = (
        "gated",
        "has_value",
        "id",
        "last_good",
        "last_time",
        "rules",
        "slow",
        "stale_after",
        "value",
        "watchers",
    )

    def __init__(self, sensor_id: str, stale_after: int) -> None:
        self.id = sensor_id
        self.stale_after = stale_after
        # Lists while the engine is built, tuples afterwards (smaller).
        self.rules: Sequence[CompiledRule] = []
        self.gated: Sequence[CompiledRule] = ()
        self.watchers: Sequence[StaleWatcher] = []
        self.last_time = NEVER
        self.last_good: int | None = None
        self.value: Value = None
        self.has_value = False
        # A good reading must take the slow path (re-arm staleness, fresh events, gates).
        self.slow = True

    def refresh_slow(self) -> None:
        self.slow = bool(self.gated) or any(w.fired or not w.queued for w in self.watchers)
