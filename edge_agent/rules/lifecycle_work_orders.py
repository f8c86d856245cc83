"""A rule's work order changed status (MaintainX's OPEN, IN_PROGRESS, ON_HOLD, DONE,
CANCELED): its asset's maintenance starts or ends, its episode is acknowledged, or the
verification of its repair starts (DONE) or is called off (reopened or cancelled by a
person). See ``RuleEngine.work_order_status`` and docs/rules.md."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from edge_agent.rules.events import ACTIVE, CLEARING, NORMAL, AlarmEvent
from edge_agent.rules.lifecycle_state import WORK_ORDER_STATUSES, Ack, Verification

if TYPE_CHECKING:
    from edge_agent.rules.compiled import CompiledRule
    from edge_agent.rules.lifecycle_engine import Lifecycle

WORK_ORDER_BY = "maintainx"
"""Who an acknowledgement by a work order is by."""


def work_order_status(
    lifecycle: Lifecycle,
    rule: CompiledRule,
    work_order: int,
    status: str,
    now: int,
    assigned: bool,
) -> list[AlarmEvent]:
    """Apply one status of ``rule``'s work order; the events it makes."""
    events: list[AlarmEvent] = []
    if not isinstance(status, str) or status not in WORK_ORDER_STATUSES:
        return events
    life = lifecycle.life_of(rule)
    news = life.work_order != work_order or life.work_order_status != status
    newly_assigned = assigned and (news or not life.work_order_assigned)
    if news or life.work_order_assigned != assigned:
        life.work_order = work_order
        life.work_order_status = status
        life.work_order_assigned = assigned
        lifecycle.changed()
    _maintenance(lifecycle, rule, work_order, status)
    # Only a change acknowledges: the same status heard again (a retained message after a
    # reconnect) says nothing about the episode open now.
    acknowledging = (news and status == "IN_PROGRESS") or newly_assigned
    if acknowledging and rule.state in (ACTIVE, CLEARING) and life.ack is None:
        note = "work order in progress" if status == "IN_PROGRESS" else "work order assigned"
        life.ack = Ack(WORK_ORDER_BY, now, note)
        life.ack_due = None
        lifecycle.changed()
        event = lifecycle.audit(rule, now, "acknowledged", WORK_ORDER_BY, note, "work-order")
        events.append(dataclasses.replace(event, work_order_id=work_order))
    if not news:
        return events
    v = life.verifying
    if status == "DONE":
        if life.reopened == work_order:
            life.reopened = None
        if rule.rule.verify_for > 0 and (v is None or v.work_order != work_order):
            _start_verification(lifecycle, rule, work_order, now)
    else:
        if v is not None and v.work_order == work_order:
            life.verifying = None  # reopened or cancelled by a person: nothing to verify
            rule.refresh_fast()
        if status == "CANCELED" and life.reopened == work_order:
            life.reopened = None
    return events


def _start_verification(
    lifecycle: Lifecycle, rule: CompiledRule, work_order: int, now: int
) -> None:
    """Watch ``rule``'s sensor for ``verify_for`` after its work order went DONE."""
    life = lifecycle.life_of(rule)
    verify_for = rule.rule.verify_for
    open_episode = rule.state != NORMAL
    life.verifications += 1
    v = life.verifying = Verification(
        work_order=work_order,
        alert_id=rule.alert_id if open_episode else life.last_alert_id,
        since=now,
        until=now + verify_for,
        peak_before=rule.peak if open_episode else life.last_peak,
        number=life.verifications,
    )
    sensor = lifecycle.engine.sensors.get(rule.sensor)
    normal = rule.state in (NORMAL, CLEARING)
    if normal and sensor is not None and sensor.has_value and not rule.stale:
        # The range after the repair starts at the value it was done with.
        value = sensor.value
        if isinstance(value, int | float) and not isinstance(value, bool):
            v.low = v.high = value
    rule.refresh_fast()
    lifecycle.changed()
    lifecycle.want(now + verify_for)


def _maintenance(lifecycle: Lifecycle, rule: CompiledRule, work_order: int, status: str) -> None:
    """The asset is under maintenance while any of its work orders has a ``while`` status;
    a work order that leaves them frees its comments."""
    asset_id = rule.rule.asset
    asset = lifecycle.asset_of(rule)
    if status in lifecycle.maintenance_statuses(asset_id):
        if asset.maintenance.get(work_order) != status:
            asset.maintenance[work_order] = status
            lifecycle.changed()
    elif work_order in asset.maintenance:
        del asset.maintenance[work_order]
        for other in lifecycle.engine.rules:
            life = other.life
            if other.rule.asset == asset_id and life and work_order in life.commented:
                life.commented.remove(work_order)
        lifecycle.changed()
