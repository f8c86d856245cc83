"""The rule engine: readings and clock ticks in, alarm events out.

Pure and deterministic: time comes only from the readings (``Reading.time_ns``: when the
agent received it, or a trace's own time) and from ``tick(now_ns)``. The running agent
feeds its monotonic clock, so no source timestamp and no wall-clock step moves a deadline;
see ``resume_at`` for how saved times are carried over a restart. The exact semantics
are in ``docs/rules.md``; the short version:

- NORMAL → PENDING at the first tripping sample (``pending_since``), PENDING → ACTIVE at
  exactly ``pending_since + on_delay``; ACTIVE → CLEARING at the first clearing sample,
  CLEARING → NORMAL at exactly ``clearing_since + off_delay``.
Where the parts live: each condition kind judges a sample (``conditions.py``), the
transitions move a rule between states (``transitions.py``) past the activation guards
(``guards.py``), deadlines and lazy staleness checks share one heap (``deadlines.py``),
and the state is written by ``saving.py`` in the shape of ``snapshot.py``. The engine is
the loop over readings and deadlines, and the bookkeeping (clock, counters, faults, what
needs saving).

The hot path (a NORMAL high or low rule and a good number) is a dict lookup and a few
attribute reads; everything else goes through ``_apply``.
"""

from __future__ import annotations

import heapq
import secrets
from typing import Any, Final, cast

from edge_agent.common.time_units import NS_PER_S
from edge_agent.config.models import SiteConfig
from edge_agent.readings import Quality, Reading, Value
from edge_agent.rules.compiled import CompiledRule, SensorState, compile_rule, link_sensors
from edge_agent.rules.conditions import (
    ABOVE,
    AT_OR_ABOVE,
    AT_OR_BELOW,
    BELOW,
    CLEAR,
    TRIP,
    same_value,
)
from edge_agent.rules.deadlines import ORDER_FLAT, ORDER_LIFE, ORDER_STATE, Deadlines
from edge_agent.rules.events import (
    CAUSE_CONDITION,
    CLEARING,
    NORMAL,
    PENDING,
    STATE_NAMES,
    AlarmEvent,
)
from edge_agent.rules.faults import EVALUATE, RuleFaults
from edge_agent.rules.guards import ActivationGuards, FloodGuard, is_chattering
from edge_agent.rules.lifecycle import AlarmCommand, CommandOutcome
from edge_agent.rules.lifecycle_commands import alarm_rows, asset_rows
from edge_agent.rules.lifecycle_commands import apply_command as apply_lifecycle_command
from edge_agent.rules.lifecycle_engine import Lifecycle
from edge_agent.rules.lifecycle_removed import held_rules, log_dropped, removal_events
from edge_agent.rules.lifecycle_work_orders import work_order_status as apply_work_order_status
from edge_agent.rules.saving import StateWriter
from edge_agent.rules.series import Flatline
from edge_agent.rules.snapshot import (
    SnapshotError,
    restore_snapshot,
    shift_snapshot,
    take_snapshot,
)
from edge_agent.rules.store import RuleStateStore
from edge_agent.rules.transitions import Transitions
from edge_agent.wire.alert import is_wire_id

GOOD: Final = Quality.GOOD

# A reading behind the engine clock by more than this is counted in ``late_readings``
# (less is the normal trail of a poll behind the agent's 0.2 s clock tick).
LATE_AFTER_NS: Final = NS_PER_S


def same_sections(old: SiteConfig, new: SiteConfig) -> bool:
    """Every top-level section of ``new`` is ``old``'s own instance."""
    if old is new:
        return True
    sections = old.__dict__
    mine = new.__dict__
    return len(sections) == len(mine) and all(
        mine.get(name, sections) is value for name, value in sections.items()
    )


class RuleEngine:
    """Evaluates a site's rules. Not thread-safe: one caller feeds and ticks it.

    ``state`` (optional) makes the engine durable: state is loaded at start and saved
    atomically after every call that changed it (``durable=True``, the default). With
    ``durable=False`` the caller flushes with :meth:`flush` (e.g. after writing the events
    to the outbox); :attr:`dirty` says whether there is anything to flush, and
    :meth:`mark_changed` makes the next save point write the state anyway.

    ``resume_at`` (the running agent's clock now) carries the saved state over to a clock
    that restarted (a monotonic clock starts again at boot): every saved time is shifted so
    that the saved ``now`` becomes ``resume_at``. Each pending deadline keeps the time it
    had left, cooldown and chattering windows keep theirs: nothing fires early and nothing
    is lost. Without it (tests, tools), saved times are used as they are.

    The alarm lifecycle's expiries (a timed shelve, an out of service, an acknowledgement
    due, a verification window) are absolute: with ``wall_now_ns`` (the wall clock now)
    and the store's saved wall time, the time the agent was down counts against them, so a
    shelve that expired meanwhile is reported at once.
    """

    def __init__(
        self,
        config: SiteConfig,
        state: RuleStateStore | None = None,
        *,
        durable: bool = True,
        resume_at: int | None = None,
        wall_now_ns: int | None = None,
    ) -> None:
        self._writer = StateWriter(state) if state is not None else None
        self._durable = durable
        # ``dirty``: a transition not yet saved (durable mode saves it before returning).
        # ``soft_dirty``: only peaks, rate and flatline bookkeeping moved; saved with the next
        # transition or flush, never on their own.
        self.dirty = False
        self.soft_dirty = False
        self.now: int | None = None
        # counters (read them through ``counters``)
        self.dropped_old = 0
        self.bad_readings = 0
        self.wrong_type = 0
        self.unknown_sensor = 0
        self.late_readings = 0
        # Cooldown, chattering and flood; the flood's limits are set by ``_build``.
        self.guards = ActivationGuards(FloodGuard(0, 0))
        self.deadlines = Deadlines()
        # The deadline heap, read at every reading (always the same list).
        self._heap = self.deadlines.heap
        self.transitions = Transitions(self, self.deadlines, self.guards)
        # One life of the engine with its saved state (see ``make_alert_id``): none without a
        # store, so a replay gives the same ids every time; a new one at every start with a
        # store, since the saved episode counts may be behind what went out (a failed save).
        self.lineage = ""
        # Episode counts of rules removed from the configuration, kept (and saved) so that a
        # rule added back continues its count instead of reusing its old alert ids.
        self.retired_episodes: dict[str, int] = {}
        # Rules whose evaluation raised: each is that rule's problem (see ``_rule_failed``).
        self.faults = RuleFaults()
        # Shelved, out of service, maintenance, acknowledged, verifying (per rule and asset).
        self.lifecycle = Lifecycle(self)
        # Audit events of holds a reload ended (a held rule removed), out with the next call.
        self.removed_events: list[AlarmEvent] = []
        self._build(config)
        if state is not None:
            snapshot = state.load()
            if snapshot is not None:
                try:
                    if resume_at is not None:
                        down = 0
                        if wall_now_ns is not None and state.saved_wall_ns is not None:
                            down = max(0, wall_now_ns - state.wall_time_of(snapshot.get("now")))
                        snapshot = shift_snapshot(snapshot, resume_at, down_ns=down)
                    log_dropped(snapshot.get("lifecycle"), {r.id for r in self.rules})
                    restore_snapshot(self, snapshot)
                except SnapshotError as exc:
                    state.set_aside(str(exc))
                    self._build(config)
                    self.now = None
                    self.guards.flood.clear()
                    self.retired_episodes = {}
                self._rebuild_heap()
            # Open episodes keep the alert ids they were saved with; new ones are numbered
            # in a new life: a save that failed before this start (a full disk, while the
            # alerts still went out) leaves episode counts behind, and the ids they would
            # give again may already be known to the ledger or the hub.
            self.lineage = secrets.token_hex(8)

    # ------------------------------------------------------------------ configuration

    def _build(self, config: SiteConfig) -> None:
        self.config = config
        self.site_id = config.site.id
        flood = self.guards.flood
        flood.limit = config.defaults.flood.work_orders
        flood.window = config.defaults.flood.window
        # Rules with equal limit conditions or guard parameters share those objects.
        shared: dict[tuple[Any, ...], Any] = {}
        self.rules: list[CompiledRule] = [
            compile_rule(key, rule, config, shared) for key, rule in enumerate(config.rules)
        ]
        self.sensors, self.watchers = link_sensors(config, self.rules)
        self.deadlines.heap.clear()
        self.lifecycle.attach(None)

    def reconfigure(self, config: SiteConfig) -> None:
        """Swap in a new config. A rule whose definition is unchanged keeps all its state; a
        changed rule keeps an open episode (ACTIVE or CLEARING, same alert id) and loses the
        rest; removed rules are dropped. Sensors keep their last readings.

        A config made of the running one's very sections (a reload that changed nothing:
        the service adopts the running instances of alike sections) keeps every compiled
        rule, sensor state and deadline as they are: rebuilding 10,000 sensors' objects only
        to restore them left the freed ones as holes in the heap."""
        if same_sections(self.config, config):
            self.config = config
            self._changed()
            self._save_if_durable()
            return
        snapshot = take_snapshot(self)
        snapshot["site"] = config.site.id  # a renamed site keeps its rules' state
        removed = held_rules(self.rules, {rule.id for rule in config.rules})
        self._build(config)
        if self._writer is not None:
            self._writer.sensor_base = None
        restore_snapshot(self, snapshot)
        self._rebuild_heap()
        self.removed_events += removal_events(self.lifecycle, removed, self.now)
        self._changed()
        self._save_if_durable()

    def _rebuild_heap(self) -> None:
        self.deadlines.rebuild(self.rules, self.watchers)
        self.lifecycle.reschedule()
        for sensor in self.sensors.values():
            sensor.refresh_slow()

    # ------------------------------------------------------------------ public API

    def feed(self, reading: Reading, received_ns: int | None = None) -> list[AlarmEvent]:
        """Apply one reading; deadlines due at or before its time fire first.

        ``received_ns`` (the running agent's clock when the reading arrived) stands for
        ``reading.received_ns``: the rules loop gives a batch's one stamp this way instead
        of copying each reading."""
        received = reading.received_ns if received_ns is None else received_ns
        t = reading.source_time_ns if received is None else received
        heap = self._heap
        events: list[AlarmEvent] = self._fire_due(t) if heap and heap[0][0] <= t else []
        sensor = self.sensors.get(reading.sensor_id)
        if sensor is None:
            self.unknown_sensor += 1
            return self._finish(events)
        # A trace sample at or before the sensor's last one is a duplicate or out of order.
        # A received time is never a duplicate: two samples of one sensor arriving together
        # share it and apply in arrival order (an unchanged value polled again is fresh).
        if t < sensor.last_time or (t == sensor.last_time and received is None):
            self.dropped_old += 1
            return self._finish(events)
        sensor.last_time = t
        now = self.now
        if now is not None and t < now:
            # Behind the engine clock (another sensor or a tick moved it): applied at the
            # clock so that events stay in time order. Counted as late only when it is
            # really late: the readings of one poll routinely trail a tick by milliseconds.
            if now - t > LATE_AFTER_NS:
                self.late_readings += 1
            t = now
        else:
            self.now = t
        value = reading.value
        if reading.quality is not GOOD:
            self.bad_readings += 1
            self._break_rates(sensor)
            return self._finish(events)
        cls = value.__class__
        if cls is float:
            if value - value != 0.0:  # type: ignore[operator]  # NaN or infinity
                self.bad_readings += 1
                self._break_rates(sensor)
                return self._finish(events)
            number = True
        elif cls is int:
            number = True
        elif value is None:
            self.bad_readings += 1
            self._break_rates(sensor)
            return self._finish(events)
        else:
            number = False
        sensor.last_good = t
        sensor.value = value
        sensor.has_value = True
        if sensor.slow:
            self._sensor_slow(sensor, t, value, events)
        # One rule's exception must not cost the other rules their events: each rule is
        # guarded on its own (a ``try`` costs nothing until it raises on Python 3.11+).
        if number:
            for rule in sensor.rules:
                try:
                    fast = rule.fast
                    if fast == ABOVE:
                        if value > rule.fast_limit:  # type: ignore[operator]
                            self._apply(rule, t, value, events)
                    elif fast == BELOW:
                        if value < rule.fast_limit:  # type: ignore[operator]
                            self._apply(rule, t, value, events)
                    elif fast == AT_OR_ABOVE:
                        if value >= rule.fast_limit:  # type: ignore[operator]
                            self._apply(rule, t, value, events)
                    elif fast == AT_OR_BELOW:
                        if value <= rule.fast_limit:  # type: ignore[operator]
                            self._apply(rule, t, value, events)
                    else:
                        self._apply(rule, t, value, events)
                except Exception as exc:
                    self._rule_failed(rule, exc)
        else:
            # Text or true/false: counted once per reading when a rule wants a number.
            if any(rule.condition.wants_number for rule in sensor.rules):
                self.wrong_type += 1
            for rule in sensor.rules:
                try:
                    self._apply(rule, t, value, events)
                except Exception as exc:
                    self._rule_failed(rule, exc)
        if self.dirty and self._durable:
            self._save()
        return events

    def tick(self, now_ns: int) -> list[AlarmEvent]:
        """Advance the clock to ``now_ns``: every deadline at or before it fires."""
        heap = self._heap
        events = self._fire_due(now_ns) if heap and heap[0][0] <= now_ns else []
        if self.now is None or now_ns > self.now:
            self.now = now_ns
        return self._finish(events)

    def flush(self) -> bool:
        """Save the whole state (every sensor's latest times included) if anything changed
        since the last save; False if saving failed."""
        if (self.dirty or self.soft_dirty) and self._writer is not None:
            return self._save(full=True)
        return True

    def close(self) -> bool:
        """Save the exact final state (clean shutdown); False if saving failed. A restart
        from it continues everything, flatline runs in progress included."""
        if self._writer is None:
            return True
        return self._save(full=True, exact=True)

    def mark_changed(self) -> None:
        """Make the next save point write the state although no rule changed (the caller's
        part of the state file moved, or it wants a save now): at the end of the next call
        in durable mode, and at the next :meth:`flush` in any mode."""
        self.dirty = True

    def mark_soft_changed(self) -> None:
        """Like :meth:`mark_changed`, but written only with the next transition or
        :meth:`flush`, never on its own (as peaks and series bookkeeping are)."""
        self.soft_dirty = True

    def rule_states(self) -> dict[str, str]:
        """Rule id → NORMAL, PENDING, ACTIVE or CLEARING."""
        return {rule.id: STATE_NAMES[rule.state] for rule in self.rules}

    def chattering(self) -> dict[str, bool]:
        """Rule id → whether its notifications are held as chattering right now."""
        return {rule.id: is_chattering(rule, self.now) for rule in self.rules}

    def stale_sensors(self) -> list[str]:
        return sorted(w.sensor.id for w in self.watchers if w.emits and w.fired)

    @property
    def counters(self) -> dict[str, int]:
        """Readings rejected and notifications held, by reason; state saves."""
        return {
            "dropped_old_readings": self.dropped_old,
            "bad_readings": self.bad_readings,
            "wrong_type_readings": self.wrong_type,
            "unknown_sensor_readings": self.unknown_sensor,
            "late_readings": self.late_readings,
            "held_cooldown": self.guards.held_cooldown,
            "held_chattering": self.guards.held_chattering,
            "held_flood": self.guards.held_flood,
            # Activations held by the alarm lifecycle (shelved, out of service, maintenance).
            **{f"held_{state}": n for state, n in self.lifecycle.held.items()},
            # Held episodes announced when their last hold ended (notifying or not).
            "released": self.lifecycle.released,
            "state_saves": self._writer.saves if self._writer is not None else 0,
            "state_save_errors": self._writer.errors if self._writer is not None else 0,
        }

    # ------------------------------------------------------------------ alarm lifecycle

    def apply_command(
        self, command: AlarmCommand, now_ns: int, *, wall_offset_ns: int = 0
    ) -> CommandOutcome:
        """Apply a person's lifecycle command (shelve, unshelve, oos, return, ack) at
        ``now_ns`` (the engine's clock, as ``tick``; what is due by then fires first). The
        outcome's events are on the engine's clock like ``tick``'s: render and enqueue them
        as those (the rules loop's path), which saves the state with them. A command that
        does not fit (unknown rule, no open alarm) is refused (``ok`` False), never raised.
        ``wall_offset_ns`` puts the times in the outcome's message on the wall clock."""
        now = self._lifecycle_now(now_ns)
        events = self._fire_due(now) if self._heap and self._heap[0][0] <= now else []
        outcome = apply_lifecycle_command(self.lifecycle, command, now, wall_offset_ns)
        if not outcome.ok:
            self._save_if_durable()
            return CommandOutcome(False, outcome.message, events)
        events += outcome.events
        # An unshelve or a return to service may end the last hold of an open alarm.
        self.lifecycle.releases(now, events)
        self._save_if_durable()
        return CommandOutcome(True, outcome.message, events)

    def work_order_status(
        self, rule: str, work_order_id: int, status: str, now_ns: int, *, assigned: bool = False
    ) -> list[AlarmEvent]:
        """The status of ``rule``'s work order ``work_order_id`` is ``status`` (MaintainX's
        OPEN, IN_PROGRESS, ON_HOLD, DONE or CANCELED; ``assigned``: it has an assignee):
        maintenance of the rule's asset starts or ends, the episode is acknowledged, or a
        repair's verification starts (DONE). The same status heard again changes nothing.
        Returns the events (engine clock), as ``tick``; an unknown rule or status, none."""
        now = self._lifecycle_now(now_ns)
        events = self._fire_due(now) if self._heap and self._heap[0][0] <= now else []
        compiled = next((r for r in self.rules if r.id == rule), None)
        if compiled is not None and is_wire_id(work_order_id):
            events += apply_work_order_status(
                self.lifecycle, compiled, work_order_id, status, now, assigned
            )
            # The end of a maintenance may end the last hold of its asset's open alarms
            # (after a DONE has started its repair's verification, which then speaks).
            self.lifecycle.releases(now, events)
        return self._finish(events)

    def alarms_view(self, now_ns: int, *, wall_offset_ns: int = 0) -> list[dict[str, Any]]:
        """One JSON-able row per rule: ``rule``, ``asset``, ``sensor``, ``state``,
        ``priority``, ``held`` (what holds its notifications now, or None), ``shelved``
        ({by, reason, at, until, until_clear} or None), ``out_of_service`` ({by, reason, at,
        until, asset} or None), ``maintenance`` (work order id or None), ``acknowledged``
        ({by, at, note} or None), ``verifying`` ({work_order, until} or None). Times are
        RFC 3339 text of the engine's clock plus ``wall_offset_ns``."""
        return alarm_rows(self.lifecycle, wall_offset_ns)

    def assets_view(self, *, wall_offset_ns: int = 0) -> list[dict[str, Any]]:
        """One row per asset out of service as a whole (see ``asset_rows``): also those
        with no rule, which :meth:`alarms_view` cannot show."""
        return asset_rows(self.lifecycle, wall_offset_ns)

    def _lifecycle_now(self, now_ns: int) -> int:
        """A command's time on the engine clock: never behind it (events stay in order)."""
        if self.now is None or now_ns > self.now:
            self.now = now_ns
        return self.now

    def snapshot(self) -> dict[str, Any]:
        """The whole engine state as JSON-ready data (what the store writes)."""
        return take_snapshot(self)

    # ------------------------------------------------------------------ persistence

    def _changed(self) -> None:
        self.dirty = True

    def _finish(self, events: list[AlarmEvent]) -> list[AlarmEvent]:
        if self.removed_events:
            events = [*self.removed_events, *events]
            self.removed_events = []
        if self.dirty and self._durable:
            self._save()
        return events

    def _save_if_durable(self) -> None:
        if self.dirty and self._durable:
            self._save()

    def _save(self, *, full: bool = False, exact: bool = False) -> bool:
        """Write the state (see ``saving.py``); False if writing failed (kept dirty)."""
        if self._writer is not None and not self._writer.save(self, full=full, exact=exact):
            return False
        self.dirty = self.soft_dirty = False
        return True

    # ------------------------------------------------------------------ deadlines

    def set_flat_due(self, rule: CompiledRule, flatline: Flatline, when: int) -> None:
        """Due ``when``: ``rule``'s flatline trips then unless a sample moved it."""
        self.deadlines.set_flat(rule, flatline, when)

    def _fire_due(self, until: int) -> list[AlarmEvent]:
        events: list[AlarmEvent] = []
        heap = self._heap
        while heap and heap[0][0] <= until:
            when, order, key, gen = heapq.heappop(heap)
            if order == ORDER_LIFE:
                if gen != self.lifecycle.gen:
                    continue
                self._advance(when)
                self.lifecycle.fire(when, events)
            elif order == ORDER_STATE:
                rule = self.rules[key]
                if rule.gen != gen or rule.deadline != when:
                    continue
                self._advance(when)
                rule.deadline = None
                try:
                    if rule.state == PENDING:
                        self.transitions.activate(rule, when, events)
                    elif rule.state == CLEARING:
                        self.transitions.clear(rule, when, events)
                except Exception as exc:
                    self._rule_failed(rule, exc)
            elif order == ORDER_FLAT:
                rule = self.rules[key]
                flatline = cast(Flatline, rule.condition)
                if flatline.flat_gen != gen or flatline.flat_due != when:
                    continue
                self._advance(when)
                flatline.flat_due = None
                sensor = self.sensors[rule.sensor]
                if rule.stale or not sensor.has_value:
                    continue
                rule.held = sensor.value
                try:
                    self.transitions.evaluate(rule, when, TRIP if rule.gate_open else CLEAR, events)
                except Exception as exc:
                    self._rule_failed(rule, exc)
            else:
                watcher = self.watchers[key]
                sensor = watcher.sensor
                if sensor.last_good is None:
                    watcher.queued = False
                    continue
                due = sensor.last_good + watcher.duration
                if due > when:
                    self.deadlines.watch(watcher, due)
                    continue
                self._advance(when)
                watcher.queued = False
                sensor.slow = True
                if watcher.fired:
                    continue
                watcher.fired = True
                self._changed()
                if watcher.emits:
                    events.append(AlarmEvent(when, "stale", sensor_id=sensor.id))
                for rule in watcher.rules:
                    try:
                        self.transitions.on_stale(rule, when, sensor, events)
                    except Exception as exc:
                        self._rule_failed(rule, exc)
        return events

    def _rule_failed(self, rule: CompiledRule, exc: Exception) -> None:
        """One rule raised: count it and mark it faulted; the other rules and the events
        already made (this rule's included) go on. Its state stays as the error left it and
        is saved, so an open episode keeps its alert id."""
        self.faults.record(rule.id, EVALUATE, exc)
        self._changed()

    def _break_rates(self, sensor: SensorState) -> None:
        """A bad reading or a stale spell is a gap in the data: a rate is never taken
        across it (65 °C before a PLC outage and 55 °C after it is no rate of change), so
        the next good sample only starts the rate again, as flatline does."""
        for rule in sensor.rules:
            if rule.condition.gap():
                if rule.state == NORMAL:
                    # Forgotten as a restart forgets it (a NORMAL rule back in its initial
                    # state is not saved); nothing reads it before the next sample sets it.
                    rule.held = None
                self.soft_dirty = True

    def _advance(self, when: int) -> None:
        if self.now is None or when > self.now:
            self.now = when

    # ------------------------------------------------------------------ samples

    def _sensor_slow(
        self, sensor: SensorState, t: int, value: Value, events: list[AlarmEvent]
    ) -> None:
        """A good reading on a sensor that is stale, not yet watched, or gates rules."""
        for watcher in sensor.watchers:
            if watcher.fired:
                watcher.fired = False
                self._changed()
                self._break_rates(sensor)
                if watcher.emits:
                    events.append(AlarmEvent(t, "fresh", sensor_id=sensor.id))
                for rule in watcher.rules:
                    rule.stale = False
                    rule.condition.fresh_again()
            if not watcher.queued:
                self.deadlines.watch(watcher, t + watcher.duration)
        for rule in sensor.gated:
            is_open = same_value(value, rule.gate_value)
            if is_open == rule.gate_open:
                continue
            rule.gate_open = is_open
            self._changed()
            if not is_open:
                if rule.state != NORMAL:
                    try:
                        self.transitions.evaluate(rule, t, CLEAR, events)
                    except Exception as exc:
                        self._rule_failed(rule, exc)
                continue
            # Opened: the rule's own sensor's held value is judged now (sample and hold).
            own = self.sensors[rule.sensor]
            if own.has_value and not rule.stale and not rule.condition.series:
                try:
                    self._apply(rule, t, own.value, events)
                except Exception as exc:
                    self._rule_failed(rule, exc)
        sensor.refresh_slow()

    def _apply(
        self,
        rule: CompiledRule,
        t: int,
        value: Value,
        events: list[AlarmEvent],
    ) -> None:
        """Judge one good sample (or a held one, when a gate opens) against one rule."""
        condition = rule.condition.judge(rule, t, value, self)
        if condition is None:
            return
        if not rule.gate_open:
            condition = CLEAR
        if rule.stale_alarm:
            # First good sample after an ``on_stale: alarm`` episode: it ends unless the
            # condition itself holds now.
            rule.stale_alarm = False
            rule.cause = CAUSE_CONDITION
            self._changed()
            if condition != TRIP:
                condition = CLEAR
        life = rule.life
        if life is not None and life.verifying is not None:
            # Before the transition: a failed repair is reopened before the activation
            # that follows it, which then names the reopened work order.
            self.lifecycle.on_sample(rule, t, value, condition, events)
        self.transitions.evaluate(rule, t, condition, events)


__all__ = ["RuleEngine"]
