"""A rule's states and the transitions between them (ISA-18.2 words, see ``docs/rules.md``).

NORMAL → PENDING at the first tripping sample, PENDING → ACTIVE when its on-delay ends
(the engine fires the deadline), ACTIVE → CLEARING at the first clearing sample, CLEARING →
NORMAL when its off-delay ends. An activation opens an episode (alert id, peak, escalation
levels) and passes the guards (cooldown, chattering, flood), which decide ``notify``.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from edge_agent.alerts import PRIORITY_ORDER, make_alert_id
from edge_agent.rules.compiled import CompiledRule, SensorState
from edge_agent.rules.conditions import CLEAR, TRIP, is_number
from edge_agent.rules.deadlines import Deadlines
from edge_agent.rules.events import (
    ACTIVE,
    CAUSE_CONDITION,
    CAUSE_STALE,
    CLEARING,
    NORMAL,
    PENDING,
    AlarmEvent,
)
from edge_agent.rules.guards import ActivationGuards

ON_STALE_HOLD: Final = "hold"
ON_STALE_CLEAR: Final = "clear"
ON_STALE_ALARM: Final = "alarm"


class LifecycleHooks(Protocol):
    """What the transitions tell the alarm lifecycle (``lifecycle_engine.Lifecycle``)."""

    def hold_of(self, rule: CompiledRule) -> str | None: ...
    def decorate(self, rule: CompiledRule, event: AlarmEvent) -> AlarmEvent: ...
    def on_activated(self, rule: CompiledRule, t: int) -> None: ...
    def on_normal(self, rule: CompiledRule, t: int, events: list[AlarmEvent]) -> None: ...
    def on_active_again(self, rule: CompiledRule, t: int, events: list[AlarmEvent]) -> None: ...


class TransitionHost(Protocol):
    """What the transitions read and mark on the engine."""

    lifecycle: LifecycleHooks

    # A transition not yet saved; only bookkeeping (peaks) moved (see ``RuleEngine``).
    dirty: bool
    soft_dirty: bool
    # What alert ids are made of (see ``make_alert_id``).
    site_id: str
    lineage: str


class Transitions:
    """Moves rules between states on a verdict (TRIP, HOLD, CLEAR), a deadline or a stale
    sensor, appending the events each transition makes."""

    __slots__ = ("deadlines", "guards", "host")

    def __init__(
        self, host: TransitionHost, deadlines: Deadlines, guards: ActivationGuards
    ) -> None:
        self.host = host
        self.deadlines = deadlines
        self.guards = guards

    def _changed(self) -> None:
        self.host.dirty = True

    def evaluate(
        self, rule: CompiledRule, t: int, condition: int, events: list[AlarmEvent]
    ) -> None:
        """Apply a verdict (TRIP, HOLD or CLEAR) of ``rule``'s condition at ``t``."""
        state = rule.state
        if state == NORMAL:
            if condition == TRIP:
                rule.pending_since = t
                rule.peak = rule.held
                if rule.on_delay == 0:
                    self.activate(rule, t, events)
                else:
                    rule.state = PENDING
                    rule.refresh_fast()
                    self.deadlines.set(rule, t + rule.on_delay)
                    self._changed()
            return
        if rule.more_extreme(rule.held, rule.peak):
            rule.peak = rule.held
            self.host.soft_dirty = True
        if state != ACTIVE:
            # PENDING and CLEARING end at a deadline with the held value: keep it saved.
            self._changed()
        if state == PENDING:
            if condition != TRIP:
                rule.state = NORMAL
                rule.pending_since = None
                rule.peak = None
                self.deadlines.cancel(rule)
                rule.refresh_fast()
                self._changed()
                self.host.lifecycle.on_normal(rule, t, events)
        elif state == ACTIVE:
            if condition == CLEAR:
                if rule.off_delay == 0:
                    self.clear(rule, t, events)
                else:
                    rule.state = CLEARING
                    self.deadlines.set(rule, t + rule.off_delay)
                    self._changed()
            else:
                self.escalate(rule, t, events)
        elif condition != CLEAR:  # CLEARING, and the sample is not clearing
            rule.state = ACTIVE
            self.deadlines.cancel(rule)
            self._changed()
            if rule.life is not None:
                # A release that waited for the alarm to be active again (not clearing).
                self.host.lifecycle.on_active_again(rule, t, events)
            self.escalate(rule, t, events)
        elif rule.deadline is None:
            # The off-delay was suspended while the sensor was stale: it restarts now.
            self.deadlines.set(rule, t + rule.off_delay)
            self._changed()

    def activate(self, rule: CompiledRule, t: int, events: list[AlarmEvent]) -> None:
        """Open an episode (on-delay over, or ``on_stale: alarm``): ``activated``, and
        ``chattering`` or ``flood`` when this activation starts one."""
        self.deadlines.cancel(rule)
        rule.state = ACTIVE
        rule.refresh_fast()
        rule.started = t
        rule.episodes += 1
        rule.alert_id = make_alert_id(self.host.site_id, rule.id, rule.episodes, self.host.lineage)
        rule.priority = rule.base_priority
        rule.active_levels = 0
        if rule.peak is None or rule.more_extreme(rule.held, rule.peak):
            rule.peak = rule.held
        lifecycle = self.host.lifecycle
        held = lifecycle.hold_of(rule) is not None
        notify, starts_chattering, starts_flood = self.guards.check(rule, t, held=held)
        rule.notify = notify
        lifecycle.on_activated(rule, t)
        events.append(self.event(rule, t, "activated"))
        if starts_chattering:
            events.append(self.event(rule, t, "chattering"))
        if starts_flood:
            events.append(AlarmEvent(t, "flood"))
        self._changed()
        self.escalate(rule, t, events)

    def escalate(self, rule: CompiledRule, t: int, events: list[AlarmEvent]) -> None:
        """Raise an ACTIVE rule's priority to the highest escalation level its value passed."""
        levels = rule.levels
        if not levels or rule.state != ACTIVE:
            return
        value = rule.held
        if not is_number(value):
            return
        v: float = value  # type: ignore[assignment]
        best = PRIORITY_ORDER[rule.priority]
        raised: str | None = None
        for index, level in enumerate(levels):
            bit = 1 << index
            if rule.active_levels & bit:
                continue
            if level.above is not None:
                beyond = v >= level.above if rule.inclusive else v > level.above
            else:
                assert level.below is not None
                beyond = v <= level.below if rule.inclusive else v < level.below
            if not beyond:
                continue
            rule.active_levels |= bit
            self._changed()
            if level.rank > best:
                best = level.rank
                raised = level.priority
        if raised is not None:
            rule.priority = raised
            events.append(self.event(rule, t, "escalated"))

    def clear(self, rule: CompiledRule, t: int, events: list[AlarmEvent]) -> None:
        """End the episode: ``cleared``, back to NORMAL."""
        events.append(self.event(rule, t, "cleared"))
        self.host.lifecycle.on_normal(rule, t, events)
        self.deadlines.cancel(rule)
        rule.state = NORMAL
        rule.pending_since = None
        rule.peak = None
        rule.alert_id = None
        rule.started = None
        rule.priority = rule.base_priority
        rule.active_levels = 0
        rule.notify = True
        rule.cause = CAUSE_CONDITION
        rule.stale_alarm = False
        rule.refresh_fast()
        self._changed()

    def on_stale(
        self, rule: CompiledRule, t: int, sensor: SensorState, events: list[AlarmEvent]
    ) -> None:
        """``rule``'s sensor went stale at ``t``: a pending episode is dropped, then its
        ``on_stale`` action (hold, clear, or alarm with the sensor's last value)."""
        rule.stale = True
        state = rule.state
        if state == PENDING:
            rule.state = NORMAL
            rule.pending_since = None
            rule.peak = None
            self.deadlines.cancel(rule)
            rule.refresh_fast()
            state = NORMAL
            self.host.lifecycle.on_normal(rule, t, events)
        mode = rule.on_stale
        if mode == ON_STALE_CLEAR:
            if state in (ACTIVE, CLEARING):
                self.clear(rule, t, events)
        elif mode == ON_STALE_ALARM and state == NORMAL:
            rule.held = sensor.value if sensor.has_value else None
            rule.cause = CAUSE_STALE
            rule.stale_alarm = True
            rule.pending_since = t
            rule.peak = None
            self.activate(rule, t, events)
        elif state == CLEARING:
            # hold: the clearing was not seen to its end; its off-delay waits for data.
            self.deadlines.cancel(rule)
        self._changed()

    def event(self, rule: CompiledRule, t: int, kind: Any) -> AlarmEvent:
        """The event of kind ``kind`` for ``rule``'s current episode (an activation,
        escalation or chattering as the alarm lifecycle holds it)."""
        event = AlarmEvent(
            time_ns=t,
            kind=kind,
            rule_id=rule.id,
            sensor_id=rule.sensor,
            value=rule.held,
            priority=rule.priority,
            alert_id=rule.alert_id,
            notify=rule.notify,
            peak=rule.peak,
            limit=rule.limit,
            started_ns=rule.started,
            cause=rule.cause,
        )
        return self.host.lifecycle.decorate(rule, event)
