"""Applying a person's lifecycle command to the engine: shelve, unshelve, out of service
(a rule or a whole asset), return to service, acknowledge. Each applied command makes its
audit events (who, why, when); one that does not fit is refused with a line that says why
and changes nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge_agent.alerts import format_time_ns
from edge_agent.config.units import format_duration
from edge_agent.rules.events import ACTIVE, CLEARING, NORMAL, STATE_NAMES, AlarmEvent
from edge_agent.rules.lifecycle import AlarmCommand, CommandOutcome
from edge_agent.rules.lifecycle_state import Ack, AssetLife, Hold, RuleLife
from edge_agent.rules.lifecycle_text import hold_text

if TYPE_CHECKING:
    from edge_agent.rules.compiled import CompiledRule
    from edge_agent.rules.lifecycle_engine import Lifecycle


def _refused(message: str) -> CommandOutcome:
    return CommandOutcome(False, message, [])


def apply_command(
    lifecycle: Lifecycle, command: AlarmCommand, now: int, wall_offset_ns: int
) -> CommandOutcome:
    """Apply ``command`` at ``now`` (the engine has fired what was due before it)."""
    engine = lifecycle.engine
    if command.asset is not None:
        return _asset_command(lifecycle, command, now, wall_offset_ns)
    rule = next((r for r in engine.rules if r.id == command.rule), None)
    if rule is None:
        return _refused(f"no rule {command.rule!r} at site {engine.site_id}")
    life = lifecycle.life_of(rule)
    events: list[AlarmEvent] = []

    def audit(kind: str) -> None:
        events.append(lifecycle.audit(rule, now, kind, command.by, command.reason, command.id))

    action = command.action
    if action == "shelve":
        max_shelve = engine.config.alarms.max_shelve
        if command.for_ns is not None and command.for_ns > max_shelve:
            return _refused(
                f"rule {rule.id}: a shelve lasts at most {format_duration(max_shelve)} "
                "(alarms.max_shelve); take the rule out of service for longer"
            )
        if command.until_clear and rule.state == NORMAL:
            return _refused(
                f"rule {rule.id} is not in alarm: a shelve until it clears needs an alarm; "
                "shelve it for a time instead"
            )
        until = None if command.for_ns is None else now + command.for_ns
        life.shelved = Hold(command.by, command.reason, now, until, command.until_clear, command.id)
        if until is not None:
            lifecycle.want(until)
        audit("shelved")
        text = hold_text(f"rule {rule.id} shelved", life.shelved, wall_offset_ns)
    elif action == "unshelve":
        if life.shelved is None:
            return _refused(f"rule {rule.id} is not shelved")
        life.shelved = None
        audit("unshelved")
        text = f"rule {rule.id} unshelved by {command.by}"
    elif action == "oos":
        until = None if command.for_ns is None else now + command.for_ns
        life.oos = Hold(command.by, command.reason, now, until, command=command.id)
        if until is not None:
            lifecycle.want(until)
        audit("out_of_service")
        text = hold_text(f"rule {rule.id} out of service", life.oos, wall_offset_ns)
    elif action == "return":
        if life.oos is None:
            asset = lifecycle.asset_of(rule)
            if asset.oos is not None:
                return _refused(
                    f"rule {rule.id} is out of service with its asset {rule.rule.asset}; "
                    "return the asset"
                )
            return _refused(f"rule {rule.id} is not out of service")
        life.oos = None
        audit("returned_to_service")
        text = f"rule {rule.id} returned to service by {command.by}"
    else:  # ack
        outcome = _ack(lifecycle, rule, command, now, events)
        if outcome is not None:
            return outcome
        text = f"rule {rule.id} acknowledged by {command.by}"
    lifecycle.changed()
    return CommandOutcome(True, text, events)


def _ack(
    lifecycle: Lifecycle,
    rule: CompiledRule,
    command: AlarmCommand,
    now: int,
    events: list[AlarmEvent],
) -> CommandOutcome | None:
    """Acknowledge ``rule``'s open alarm; an outcome only when it is refused or a no-op."""
    if rule.state not in (ACTIVE, CLEARING):
        return _refused(f"rule {rule.id} has no alarm to acknowledge")
    life = lifecycle.life_of(rule)
    if life.ack is not None:
        return CommandOutcome(True, f"rule {rule.id} was already acknowledged by {life.ack.by}")
    life.ack = Ack(command.by, now, command.note)
    life.ack_due = None
    event = lifecycle.audit(
        rule, now, "acknowledged", command.by, command.note or command.reason, command.id
    )
    events.append(event)
    return None


def _asset_command(
    lifecycle: Lifecycle, command: AlarmCommand, now: int, wall_offset_ns: int
) -> CommandOutcome:
    """``oos`` or ``return`` of a whole asset: one audit event per rule of the asset."""
    engine = lifecycle.engine
    asset_id = command.asset
    assert asset_id is not None
    rules = [r for r in engine.rules if r.rule.asset == asset_id]
    if asset_id not in engine.config.assets and not rules:
        return _refused(f"no asset {asset_id!r} at site {engine.site_id}")
    asset = lifecycle.assets.setdefault(asset_id, AssetLife())
    if command.action == "oos":
        until = None if command.for_ns is None else now + command.for_ns
        asset.oos = Hold(command.by, command.reason, now, until, command=command.id)
        if until is not None:
            lifecycle.want(until)
        kind = "out_of_service"
        text = hold_text(f"asset {asset_id} out of service", asset.oos, wall_offset_ns)
    else:
        if asset.oos is None:
            return _refused(f"asset {asset_id} is not out of service")
        asset.oos = None
        kind = "returned_to_service"
        text = f"asset {asset_id} returned to service by {command.by}"
    events = [
        lifecycle.audit(rule, now, kind, command.by, command.reason, command.id) for rule in rules
    ]
    lifecycle.changed()
    return CommandOutcome(True, f"{text} ({len(rules)} rules)", events)


def _time(t: int | None, wall_offset_ns: int) -> str | None:
    if t is None:
        return None
    try:
        return format_time_ns(t + wall_offset_ns)
    except (ValueError, OverflowError, OSError):
        return f"{t} ns"


def _hold_row(hold: Hold | None, wall_offset_ns: int) -> dict[str, Any] | None:
    if hold is None:
        return None
    return {
        "by": hold.by,
        "reason": hold.reason,
        "at": _time(hold.at, wall_offset_ns),
        "until": _time(hold.until, wall_offset_ns),
        "until_clear": hold.until_clear,
    }


def alarm_rows(lifecycle: Lifecycle, wall_offset_ns: int) -> list[dict[str, Any]]:
    """The ``alarms list`` view: one row per rule, in config order."""
    rows: list[dict[str, Any]] = []
    for rule in lifecycle.engine.rules:
        life = rule.life or RuleLife()
        asset = lifecycle.asset_of(rule)
        oos = _hold_row(life.oos or asset.oos, wall_offset_ns)
        if oos is not None:
            oos["asset"] = life.oos is None
        ack = life.ack
        v = life.verifying
        rows.append(
            {
                "rule": rule.id,
                "asset": rule.rule.asset,
                "sensor": rule.sensor,
                "state": STATE_NAMES[rule.state],
                "priority": rule.priority,
                "held": lifecycle.hold_of(rule),
                "shelved": _hold_row(life.shelved, wall_offset_ns),
                "out_of_service": oos,
                "maintenance": min(asset.maintenance) if asset.maintenance else None,
                "acknowledged": None
                if ack is None
                else {"by": ack.by, "at": _time(ack.at, wall_offset_ns), "note": ack.note},
                "verifying": None
                if v is None
                else {"work_order": v.work_order, "until": _time(v.until, wall_offset_ns)},
            }
        )
    return rows


def asset_rows(lifecycle: Lifecycle, wall_offset_ns: int) -> list[dict[str, Any]]:
    """Every asset out of service as a whole: ``asset``, ``rules`` (how many of its rules
    it holds: 0 is an asset nothing would show otherwise) and the hold (by, reason, at,
    until), in asset order."""
    counts: dict[str, int] = {}
    for rule in lifecycle.engine.rules:
        counts[rule.rule.asset] = counts.get(rule.rule.asset, 0) + 1
    rows: list[dict[str, Any]] = []
    for asset_id in sorted(lifecycle.assets):
        hold = _hold_row(lifecycle.assets[asset_id].oos, wall_offset_ns)
        if hold is not None:
            hold.pop("until_clear", None)
            rows.append({"asset": asset_id, "rules": counts.get(asset_id, 0), **hold})
    return rows
