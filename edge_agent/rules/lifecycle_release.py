"""A held episode announced when its holds end (a release; ISA-18.2 / OPC UA Part 9: an
alarm still active when its shelve ends, or when it returns to service, annunciates again).

An activation held by the lifecycle (shelved, out of service, maintenance) leaves its
episode unannounced (``RuleLife.unannounced``). When no hold is left and the alarm is still
ACTIVE, one ``activated`` with ``released`` (the hold that ended last) announces it: same
alert id, so the episode's work order is made once, and the event id
``alert_id:activated:released`` (one release per episode, never made of a time). A CLEARING
alarm waits: announced if it becomes ACTIVE again, forgotten if it clears. A rule whose
repair is being verified is left to the verdict (``reopened`` is its notification). The
guards that apply are in ``ActivationGuards.check_release``. See docs/rules.md, "Release".
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Final

from edge_agent.rules.events import ACTIVE, AlarmEvent

if TYPE_CHECKING:
    from edge_agent.rules.compiled import CompiledRule
    from edge_agent.rules.lifecycle_engine import Lifecycle

RELEASE_QUALIFIER: Final = "released"
"""The release's event id is ``alert_id:activated:released``: one per episode."""


def is_releasable(lifecycle: Lifecycle, rule: CompiledRule) -> bool:
    """Whether ``rule``'s episode is to be announced now: unannounced, no hold left, ACTIVE,
    and no repair of it being verified."""
    life = rule.life
    return (
        life is not None
        and life.unannounced is not None
        and rule.state == ACTIVE
        and life.verifying is None
        and lifecycle.hold_of(rule) is None
    )


def release_all(lifecycle: Lifecycle, t: int, events: list[AlarmEvent]) -> None:
    """After the holds changed (a command, a work-order status, an expiry): every episode
    whose last hold ended is announced at ``t``; one still held remembers what holds it."""
    for rule in lifecycle.engine.rules:
        life = rule.life
        if life is None or life.unannounced is None:
            continue
        held = lifecycle.hold_of(rule)
        if held is not None:
            if life.unannounced != held:
                life.unannounced = held
                lifecycle.changed()
        elif is_releasable(lifecycle, rule):
            release(lifecycle, rule, t, events)


def release(lifecycle: Lifecycle, rule: CompiledRule, t: int, events: list[AlarmEvent]) -> None:
    """Announce ``rule``'s held episode at ``t``: one ``activated`` with ``released``."""
    life = lifecycle.life_of(rule)
    why = life.unannounced
    life.unannounced = None
    engine = lifecycle.engine
    notify, starts_flood = engine.guards.check_release(rule, t)
    # The episode's later escalations and clear carry the notify of its announcement.
    rule.notify = notify
    lifecycle.released += 1
    event = engine.transitions.event(rule, t, "activated")
    events.append(
        dataclasses.replace(event, notify=notify, qualifier=RELEASE_QUALIFIER, released=why)
    )
    if starts_flood:
        events.append(AlarmEvent(t, "flood"))
    ack_within = rule.rule.ack_within
    if notify and ack_within and life.ack is None:
        # Announced now: the time to acknowledge it starts now.
        life.ack_due = t + ack_within
        lifecycle.want(life.ack_due)
    lifecycle.changed()


__all__ = ["RELEASE_QUALIFIER", "is_releasable", "release", "release_all"]
