"""Rules and sensors as the engine holds them: slotted objects built once from the config.

Everything the hot path reads is a plain attribute here (no pydantic model access per
reading). A rule holds what every rule has (delays, staleness, gate, escalation, guard
history) and its live state; what its kind needs lives in its :attr:`CompiledRule.condition`
(``conditions.py``) and its guard parameters in :attr:`CompiledRule.guard` (``guards.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final, cast

from edge_agent.alerts import PRIORITY_ORDER
from edge_agent.config.models import Rule, SiteConfig
from edge_agent.readings import Value
from edge_agent.rules.conditions import Band, Condition, Equals, High, Low
from edge_agent.rules.events import CAUSE_CONDITION, NORMAL
from edge_agent.rules.guards import GuardPolicy
from edge_agent.rules.lifecycle_state import RuleLife
from edge_agent.rules.series import Flatline, Rate

NEVER: Final = -(2**63)  # a sensor's last reading time before its first reading


class Level:
    """One escalation level: ``above`` or ``below`` a value, with a priority."""

    __slots__ = ("above", "below", "priority", "rank")

    def __init__(self, above: float | None, below: float | None, priority: str) -> None:
        self.above = above
        self.below = below
        self.priority = priority
        self.rank = PRIORITY_ORDER[priority]


class CompiledRule:
    """One rule: its definition flattened to attributes, and its live state."""

    __slots__ = (
        "_fingerprint",
        "active_levels",
        "alert_id",
        "base_priority",
        "cause",
        "chatter_times",
        "chattering",
        "condition",
        "deadline",
        "episodes",
        "fast",
        "fast_limit",
        "gate_open",
        "gate_sensor",
        "gate_value",
        "gen",
        "guard",
        "held",
        "id",
        "inclusive",
        "key",
        "last_activation",
        "levels",
        "life",
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
    )

    def __init__(
        self,
        key: int,
        rule: Rule,
        config: SiteConfig,
        shared: dict[tuple[Any, ...], Any] | None = None,
    ) -> None:
        self.key = key
        self.rule = rule
        self.id = rule.id
        self.sensor = rule.sensor
        self._fingerprint: str | None = None
        self.inclusive = rule.inclusive
        self.on_delay = rule.on_delay
        self.off_delay = rule.off_delay
        self.base_priority = rule.priority.value
        self.on_stale = rule.on_stale.value
        self.stale_after = config.stale_after_ns(rule)
        self.condition: Condition = make_condition(rule, shared)
        # The limit of the hot-path check (``fast``), copied here to save a lookup per reading.
        self.fast_limit = self.condition.fast_limit
        chattering = rule.chattering or config.defaults.chattering
        guard = GuardPolicy(rule.cooldown, chattering.activations, chattering.window)
        if shared is not None:
            params = (guard.cooldown, guard.chatter_activations, guard.chatter_window)
            guard = shared.setdefault(("guard", *params), guard)
        self.guard: GuardPolicy = guard
        self.levels = tuple(
            Level(level.above, level.below, level.priority.value) for level in rule.escalate
        )
        if rule.only_when is not None:
            self.gate_sensor: str | None = rule.only_when.sensor
            self.gate_value: Value = rule.only_when.equals
            self.gate_open = False
        else:
            self.gate_sensor = None
            self.gate_value = None
            self.gate_open = True
        # The alarm lifecycle (shelved, out of service, acknowledged, verifying; see
        # ``lifecycle_engine.py``): made when a rule first needs one (most never do).
        self.life: RuleLife | None = None
        self.reset()
        self.last_activation: int | None = None
        # Episodes this rule has opened, ever (persisted): the next one's number names its
        # alert id, so no clock value can make two episodes share an id.
        self.episodes = 0
        self.chatter_times: list[int] | None = None
        self.chattering = False

    @property
    def kind(self) -> int:
        """The condition kind (``conditions.HIGH`` ... ``conditions.EQUALS``)."""
        return self.condition.kind

    @property
    def fingerprint(self) -> str:
        """Changes when anything that decides this rule's behaviour changes (computed when
        first needed: most rules never need it)."""
        if self._fingerprint is None:
            text = (
                f"{self.rule.model_dump_json(by_alias=True)}|{self.stale_after}|"
                f"{self.guard.chatter_activations}|{self.guard.chatter_window}"
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
        self.condition.reset()
        self.refresh_fast()

    def refresh_fast(self) -> None:
        """``fast`` names the hot-path check that suffices in the current state: a NORMAL,
        ungated high or low rule only needs to know whether a sample trips (see
        ``conditions.ABOVE``); 0 judges every sample (a repair being verified watches every
        sample's range)."""
        life = self.life
        if (
            self.state == NORMAL
            and self.gate_sensor is None
            and (life is None or not life.verifying)
        ):
            self.fast = self.condition.fast
        else:
            self.fast = 0

    @property
    def limit(self) -> Value:
        """The limit reported with events (for a band: the side of the episode's peak)."""
        return self.condition.limit(self.held, self.peak)

    def more_extreme(self, value: Value, than: Value) -> bool:
        """Whether ``value`` is a new peak for this rule's episode."""
        if than is None:
            return True
        if not isinstance(value, int | float) or not isinstance(than, int | float):
            return False
        return self.condition.further(value, than)


def compile_rule(
    key: int, rule: Rule, config: SiteConfig, shared: dict[tuple[Any, ...], Any] | None = None
) -> CompiledRule:
    """The engine's object for ``rule`` (``key`` is its position in the config). Rules
    compiled with the same ``shared`` dict share their stateless parts (condition, guard
    parameters) with equal ones."""
    return CompiledRule(key, rule, config, shared)


def make_condition(rule: Rule, shared: dict[tuple[Any, ...], Any] | None = None) -> Condition:
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
    return cast(Condition, shared.setdefault(key, condition))


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


def link_sensors(
    config: SiteConfig, rules: Sequence[CompiledRule]
) -> tuple[dict[str, SensorState], list[StaleWatcher]]:
    """Every sensor of the config or of a rule (by id, sorted) with the rules it feeds and
    gates, and the staleness watchers (one per sensor and duration, numbered in order)."""
    sensors: dict[str, SensorState] = {}
    for sensor_id in sorted(set(config.sensors) | {r.sensor for r in rules}):
        sensor = config.sensors.get(sensor_id)
        own = sensor.stale_after if sensor is not None else None
        sensors[sensor_id] = SensorState(sensor_id, own or config.defaults.stale_after)
    rules_of: dict[str, list[CompiledRule]] = {}
    gated_by: dict[str, list[CompiledRule]] = {}
    for rule in rules:
        rules_of.setdefault(rule.sensor, []).append(rule)
        if rule.gate_sensor is not None:
            if rule.gate_sensor not in sensors:
                sensors[rule.gate_sensor] = SensorState(
                    rule.gate_sensor, config.defaults.stale_after
                )
            gated_by.setdefault(rule.gate_sensor, []).append(rule)
    all_watchers: list[StaleWatcher] = []
    for state in sensors.values():
        state.rules = tuple(rules_of.get(state.id, ()))
        state.gated = tuple(gated_by.get(state.id, ()))
        watchers: dict[int, StaleWatcher] = {}
        needs: list[tuple[int, CompiledRule | None]] = [(state.stale_after, None)]
        needs += [(r.stale_after, r) for r in state.rules]
        for duration, rule_or_none in needs:
            watcher = watchers.get(duration)
            if watcher is None:
                watcher = watchers[duration] = StaleWatcher(len(all_watchers), state, duration)
                all_watchers.append(watcher)
            if rule_or_none is None:
                watcher.emits = True
            else:
                watcher.rules = (*watcher.rules, rule_or_none)
        state.watchers = tuple(watchers.values())
    return sensors, all_watchers
