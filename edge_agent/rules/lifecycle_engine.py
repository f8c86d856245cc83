"""The alarm lifecycle in the engine: shelved, out of service, maintenance, acknowledged
and repair verified (ISA-18.2 / OPC UA Part 9; the state diagram is in ``docs/rules.md``).

A held activation (shelved, out of service, its asset under maintenance) is still an
episode with its events and state; it carries ``notify=False`` and ``held``, and is
announced once if still ACTIVE when its last hold ends (``lifecycle_release.py``). Expiries
(a timed shelve or out of service, an acknowledgement overdue, the end of a verification
window) share the engine's deadline heap as one entry: the earliest of them.
Pure: times come from the engine (readings, ticks, the caller's ``now``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Final

from edge_agent.alerts import PRIORITY_ORDER, make_lifecycle_id
from edge_agent.config.units import format_duration
from edge_agent.rules.conditions import TRIP
from edge_agent.rules.events import ACTIVE, CLEARING, NORMAL, PENDING, AlarmEvent
from edge_agent.rules.lifecycle_release import is_releasable, release, release_all
from edge_agent.rules.lifecycle_state import (
    HELD_MAINTENANCE,
    HELD_OOS,
    HELD_SHELVED,
    AssetLife,
    RuleLife,
    Verification,
    dump_asset,
    dump_rule,
    load_asset,
    load_rule,
)
from edge_agent.rules.lifecycle_text import (
    maintenance_comment,
    reopened_comment,
    verified_comment,
)

if TYPE_CHECKING:
    from edge_agent.rules.compiled import CompiledRule
    from edge_agent.rules.engine import RuleEngine

SYSTEM_BY: Final = "edge-agent"
"""Who an expiry's audit event is by."""
MAINTENANCE_DEFAULT: Final = ("IN_PROGRESS", "ON_HOLD")
"""An asset's ``maintenance.while`` when it is not in the site file (a rule's own asset id)."""
_NOTIFYING_KINDS: Final = frozenset({"activated", "escalated", "chattering"})


class Lifecycle:
    """The lifecycle states of one engine's rules and assets, and their transitions."""

    def __init__(self, engine: RuleEngine) -> None:
        self.engine = engine
        self.assets: dict[str, AssetLife] = {}
        # The generation of the lifecycle's one heap entry, and its time.
        self.gen = 0
        self.due: int | None = None
        # Activations held, by the state that held them (the engine's counters).
        self.held = {HELD_SHELVED: 0, HELD_OOS: 0, HELD_MAINTENANCE: 0}
        # Held episodes announced when their last hold ended (``lifecycle_release.py``).
        self.released = 0

    # ------------------------------------------------------------------ setup, saving

    def attach(self, saved: dict[str, Any] | None) -> None:
        """Give the engine's (newly built) rules their lifecycle: the saved one of rules
        still configured (by id), fresh ones otherwise. Removed rules' states are dropped."""
        rules_data = saved.get("rules", {}) if saved else {}
        assets_data = saved.get("assets", {}) if saved else {}
        self.assets = {}
        for rule in self.engine.rules:
            data = rules_data.get(rule.id)
            rule.life = load_rule(data) if data is not None else None
            asset_id = rule.rule.asset
            if asset_id not in self.assets:
                asset_data = assets_data.get(asset_id)
                self.assets[asset_id] = (
                    load_asset(asset_data) if asset_data is not None else AssetLife()
                )
            rule.refresh_fast()
        for asset_id in self.engine.config.assets:
            if asset_id not in self.assets:
                asset_data = assets_data.get(asset_id)
                self.assets[asset_id] = (
                    load_asset(asset_data) if asset_data is not None else AssetLife()
                )
        for asset_id, asset in self.assets.items():
            # A reload that changed ``maintenance.while`` ends what it no longer lists.
            statuses = self.maintenance_statuses(asset_id)
            asset.maintenance = {k: v for k, v in asset.maintenance.items() if v in statuses}

    def dump(self) -> dict[str, Any] | None:
        """The saved form; None when every state is initial (nothing to save)."""
        rules = {
            r.id: dump_rule(r.life)
            for r in self.engine.rules
            if r.life is not None and not r.life.is_initial()
        }
        assets = {a: dump_asset(life) for a, life in self.assets.items() if not life.is_initial()}
        return {"rules": rules, "assets": assets} if rules or assets else None

    def reschedule(self) -> None:
        """Queue the earliest expiry on the engine's heap (after a restore or a change)."""
        times = [t for rule in self.engine.rules if rule.life for t in rule.life.due_times()]
        times += [a.oos.until for a in self.assets.values() if a.oos and a.oos.until]
        self.due = None
        self.gen += 1
        now = self.engine.now
        if now is not None and any(is_releasable(self, rule) for rule in self.engine.rules):
            # A hold ended without an event to announce it (a reload that changed an
            # asset's ``maintenance.while``): the next tick does.
            times.append(now)
        if times:
            self.want(min(times))

    def want(self, when: int) -> None:
        """Something expires at ``when``: make sure the heap's entry is not later."""
        if self.due is None or when < self.due:
            self.due = when
            self.gen += 1
            self.engine.deadlines.set_life(when, self.gen)

    def changed(self) -> None:
        self.engine.dirty = True

    # ------------------------------------------------------------------ holds

    def life_of(self, rule: CompiledRule) -> RuleLife:
        """``rule``'s lifecycle, made when first needed (most rules never need one)."""
        life = rule.life
        if life is None:
            life = rule.life = RuleLife()
        return life

    def asset_of(self, rule: CompiledRule) -> AssetLife:
        return self.assets.setdefault(rule.rule.asset, AssetLife())

    def hold_of(self, rule: CompiledRule) -> str | None:
        """Which state holds ``rule``'s notifications now (out of service first)."""
        life = rule.life
        asset = self.asset_of(rule)
        if (life is not None and life.oos is not None) or asset.oos is not None:
            return HELD_OOS
        if life is not None and life.shelved is not None:
            return HELD_SHELVED
        if asset.maintenance:
            return HELD_MAINTENANCE
        return None

    def decorate(self, rule: CompiledRule, event: AlarmEvent) -> AlarmEvent:
        """An activation, escalation or chattering event as the lifecycle makes it: held
        (``notify`` False, ``held``, the maintenance comment once per work order), or an
        activation after a reopened repair naming that work order."""
        if event.kind not in _NOTIFYING_KINDS:
            return event
        held = self.hold_of(rule)
        if held is not None and event.kind == "activated":
            self.held[held] += 1
        if held is None:
            life = rule.life
            if event.kind == "activated" and life is not None and life.reopened is not None:
                return dataclasses.replace(event, work_order_id=life.reopened)
            return event
        life = self.life_of(rule)
        if held != HELD_MAINTENANCE:
            return dataclasses.replace(event, notify=False, held=held)
        maintenance = self.asset_of(rule).maintenance
        work_order = min(maintenance)
        if work_order in life.commented:
            return dataclasses.replace(event, notify=False, held=held, work_order_id=work_order)
        life.commented.append(work_order)
        self.changed()
        comment = maintenance_comment(
            self.engine.config,
            rule.id,
            rule.rule.asset,
            rule.sensor,
            event.value,
            maintenance[work_order],
        )
        return dataclasses.replace(
            event, notify=False, held=held, work_order_id=work_order, comment=comment
        )

    # ------------------------------------------------------------------ rule transitions

    def on_activated(self, rule: CompiledRule, t: int) -> None:
        """A new episode: its acknowledgement starts over and, if it notifies, is watched;
        held by a state, it is announced when its holds end (``lifecycle_release.py``)."""
        ack_within = rule.rule.ack_within
        held = self.hold_of(rule)
        if rule.life is None and not ack_within and held is None:
            return
        life = self.life_of(rule)
        life.ack = None
        life.ack_due = None
        life.unannounced = held
        if ack_within and rule.notify:
            life.ack_due = t + ack_within
            self.want(life.ack_due)
        self.changed()

    def on_normal(self, rule: CompiledRule, t: int, events: list[AlarmEvent]) -> None:
        """``rule`` is back to NORMAL (cleared, or a pending trip that went away): a one-shot
        shelve ends; the episode is remembered for a repair verified after it."""
        life = rule.life
        if life is None:
            return
        if rule.alert_id is not None and life.work_order is not None:
            # Kept only for a rule whose work orders report their status: its repair may
            # be done (and verified) after the episode cleared.
            life.last_alert_id = rule.alert_id
            life.last_peak = rule.peak
        life.ack = None
        life.ack_due = None
        life.unannounced = None  # the episode is over: nothing left to announce
        shelved = life.shelved
        if shelved is not None and shelved.until_clear:
            life.shelved = None
            events.append(
                self.audit(
                    rule, t, "unshelved", SYSTEM_BY, "the alarm cleared", f"clear-{shelved.command}"
                )
            )
        self.changed()

    def on_sample(
        self, rule: CompiledRule, t: int, value: Any, condition: int, events: list[AlarmEvent]
    ) -> None:
        """A sample judged while ``rule``'s repair is verified (before its transition): its
        range is kept, and one beyond the limit fails the verification at once."""
        v = rule.life.verifying if rule.life is not None else None
        assert v is not None
        if isinstance(value, int | float) and not isinstance(value, bool):
            v.low = value if v.low is None or value < v.low else v.low
            v.high = value if v.high is None or value > v.high else v.high
            self.engine.soft_dirty = True
        if condition == TRIP:
            comment = reopened_comment(
                self.engine.config, rule.sensor, v, t, value=value, limit=rule.limit
            )
            self._reopen(rule, t, v, comment, events)

    # ------------------------------------------------------------------ expiries

    def fire(self, now: int, events: list[AlarmEvent]) -> None:
        """Everything that expires at or before ``now``, rule by rule in config order."""
        self.due = None
        for asset_id, asset in self.assets.items():
            if asset.oos is not None and asset.oos.until is not None and asset.oos.until <= now:
                until, command = asset.oos.until, asset.oos.command
                asset.oos = None
                self.changed()
                for rule in self.engine.rules:
                    if rule.rule.asset == asset_id:
                        events.append(
                            self.audit(
                                rule,
                                until,
                                "returned_to_service",
                                SYSTEM_BY,
                                f"out of service of asset {asset_id} expired",
                                f"expiry-{command}",
                            )
                        )
        for rule in self.engine.rules:
            life = rule.life
            if life is None or not life.due_times():
                continue
            for hold, kind in ((life.shelved, "unshelved"), (life.oos, "returned_to_service")):
                if hold is not None and hold.until is not None and hold.until <= now:
                    if kind == "unshelved":
                        life.shelved = None
                    else:
                        life.oos = None
                    self.changed()
                    reason = f"{'shelve' if kind == 'unshelved' else 'out of service'} expired"
                    qualifier = f"expiry-{hold.command}"
                    events.append(self.audit(rule, hold.until, kind, SYSTEM_BY, reason, qualifier))
            if life.ack_due is not None and life.ack_due <= now:
                self._overdue(rule, life.ack_due, events)
            v = life.verifying
            if v is not None and v.until <= now:
                self._verdict(rule, v, events)
        self.releases(now, events)
        self.reschedule()

    def releases(self, t: int, events: list[AlarmEvent]) -> None:
        """After the holds changed: announce every held episode whose last hold ended."""
        release_all(self, t, events)

    def on_active_again(self, rule: CompiledRule, t: int, events: list[AlarmEvent]) -> None:
        """``rule`` went from CLEARING back to ACTIVE: a release that waited is made now."""
        if is_releasable(self, rule):
            release(self, rule, t, events)

    def _overdue(self, rule: CompiledRule, t: int, events: list[AlarmEvent]) -> None:
        """Still unacknowledged after ``ack_within``: one ``escalated``, priority one up."""
        life = self.life_of(rule)
        life.ack_due = None
        self.changed()
        if rule.state not in (ACTIVE, CLEARING) or life.ack is not None:
            return
        if self.hold_of(rule) is not None:
            return  # held now (shelved, out of service, maintenance): nobody is to answer it
        names = list(PRIORITY_ORDER)
        rule.priority = names[min(PRIORITY_ORDER[rule.priority] + 1, len(names) - 1)]
        ack_within = rule.rule.ack_within or 0
        event = self.engine.transitions.event(rule, t, "escalated")
        events.append(
            dataclasses.replace(
                event,
                reason=f"unacknowledged after {format_duration(ack_within)}",
                qualifier="unacknowledged",
            )
        )

    def _verdict(self, rule: CompiledRule, v: Verification, events: list[AlarmEvent]) -> None:
        """The end of a verification window: verified, unless the sensor went silent or
        the alarm never returned to normal."""
        config = self.engine.config
        sensor = self.engine.sensors.get(rule.sensor)
        if rule.stale or sensor is None or not sensor.has_value:
            self._reopen(
                rule,
                v.until,
                v,
                reopened_comment(config, rule.sensor, v, v.until, stale=True),
                events,
            )
            return
        if rule.state in (ACTIVE, PENDING):
            comment = reopened_comment(
                config, rule.sensor, v, v.until, value=rule.held, limit=rule.limit, still=True
            )
            self._reopen(rule, v.until, v, comment, events)
            return
        if v.low is None:  # no sample in the window: the held value was normal throughout
            v.low = v.high = sensor.value
        comment = verified_comment(config, rule.sensor, rule.rule.verify_for, v)
        self.life_of(rule).verifying = None
        rule.refresh_fast()
        self.changed()
        events.append(self._repair_event(rule, v, v.until, "verified", comment))

    def _reopen(
        self,
        rule: CompiledRule,
        t: int,
        v: Verification,
        comment: str,
        events: list[AlarmEvent],
    ) -> None:
        life = self.life_of(rule)
        life.verifying = None
        life.reopened = v.work_order
        # The reopened work order is the notification of an episode open now.
        life.unannounced = None
        # Asked for: the status heard next (OPEN) is not news, and a DONE after it is.
        life.work_order_status = "OPEN"
        rule.refresh_fast()
        self.changed()
        events.append(self._repair_event(rule, v, t, "reopened", comment))

    def _repair_event(
        self, rule: CompiledRule, v: Verification, t: int, kind: str, comment: str
    ) -> AlarmEvent:
        alert_id = v.alert_id or make_lifecycle_id(
            self.engine.site_id, rule.id, f"repair-{v.work_order}"
        )
        event = self.engine.transitions.event(rule, t, kind)
        return dataclasses.replace(
            event,
            value=self._value(rule, event.value),
            alert_id=alert_id,
            notify=True,
            work_order_id=v.work_order,
            comment=comment,
            qualifier=f"{v.work_order}-{v.number}",
            held=None,
        )

    # ------------------------------------------------------------------ work orders

    def maintenance_statuses(self, asset_id: str) -> frozenset[str]:
        """The work-order statuses that put ``asset_id`` under maintenance."""
        model = self.engine.config.assets.get(asset_id)
        return frozenset(model.maintenance.while_ if model is not None else MAINTENANCE_DEFAULT)

    # ------------------------------------------------------------------ audit events

    def _value(self, rule: CompiledRule, held: Any) -> Any:
        """The value a lifecycle event reports: a NORMAL rule's held value is not kept (nor
        saved), so the sensor's last one."""
        if rule.state != NORMAL:
            return held
        sensor = self.engine.sensors.get(rule.sensor)
        return sensor.value if sensor is not None and sensor.has_value else None

    def audit(
        self, rule: CompiledRule, t: int, kind: str, by: str, reason: str, qualifier: str
    ) -> AlarmEvent:
        """An audit event of ``rule`` (its open episode's id, or one of its own)."""
        event = self.engine.transitions.event(rule, t, kind)
        alert_id = rule.alert_id or make_lifecycle_id(self.engine.site_id, rule.id, qualifier)
        return dataclasses.replace(
            event,
            value=self._value(rule, event.value),
            alert_id=alert_id,
            notify=False,
            by=by,
            reason=reason,
            qualifier=qualifier,
        )


__all__ = ["MAINTENANCE_DEFAULT", "SYSTEM_BY", "Lifecycle"]
