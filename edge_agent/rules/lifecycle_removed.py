"""The holds of a rule removed from the site file: said, never dropped silently.

A reload that removes a shelved or out-of-service rule ends its holds: one ``unshelved``
or ``returned_to_service`` audit event each (by ``edge-agent``, reason
:data:`REMOVED_REASON`) and a log line. A rule added back (a rename and back) starts with
no hold: it notifies again until it is shelved again, and the events said why. A rule
removed while the agent was stopped is only logged at the start (its definition is gone,
so no event can be made of it). See docs/rules.md, "A rule removed while held".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from edge_agent.rules.lifecycle_engine import SYSTEM_BY

if TYPE_CHECKING:
    from edge_agent.rules.compiled import CompiledRule
    from edge_agent.rules.events import AlarmEvent
    from edge_agent.rules.lifecycle_engine import Lifecycle

log = logging.getLogger(__name__)

REMOVED_REASON: Final = "rule removed from the site file"


def held_rules(rules: Iterable[CompiledRule], kept_ids: set[str]) -> list[CompiledRule]:
    """The rules of ``rules`` not in ``kept_ids`` that are shelved or out of service."""
    return [
        rule
        for rule in rules
        if rule.id not in kept_ids
        and rule.life is not None
        and (rule.life.shelved is not None or rule.life.oos is not None)
    ]


def removal_events(
    lifecycle: Lifecycle, removed: Iterable[CompiledRule], now: int | None
) -> list[AlarmEvent]:
    """One audit event per hold of each removed rule (the rules as they were configured),
    at ``now`` (the engine's clock; the hold's own time before the first tick)."""
    events: list[AlarmEvent] = []
    for rule in removed:
        life = rule.life
        if life is None:
            continue
        for hold, kind in ((life.shelved, "unshelved"), (life.oos, "returned_to_service")):
            if hold is None:
                continue
            t = hold.at if now is None else max(now, hold.at)
            qualifier = f"removed-{hold.command}"
            events.append(lifecycle.audit(rule, t, kind, SYSTEM_BY, REMOVED_REASON, qualifier))
            log.warning(
                "A held rule was removed from the site file; its hold ended.",
                extra={"rule": rule.id, "event": kind, "by": hold.by, "reason": hold.reason},
            )
    return events


def log_dropped(saved: Mapping[str, Any] | None, kept_ids: set[str]) -> int:
    """At a start: log each saved hold of a rule the site file no longer has (dropped with
    it); how many."""
    rules = saved.get("rules") if isinstance(saved, Mapping) else None
    dropped = 0
    if not isinstance(rules, Mapping):  # a damaged shape is for the restore to refuse
        return 0
    for rule_id, data in rules.items():
        if rule_id in kept_ids or not isinstance(data, Mapping):
            continue
        for key, what in (("shelved", "shelve"), ("oos", "out of service")):
            hold = data.get(key)
            if isinstance(hold, Mapping):
                dropped += 1
                log.warning(
                    "A held rule is no longer in the site file; its hold is dropped.",
                    extra={
                        "rule": str(rule_id)[:128],
                        "hold": what,
                        "by": str(hold.get("by"))[:128],
                        "reason": REMOVED_REASON,
                    },
                )
    return dropped


__all__ = ["REMOVED_REASON", "held_rules", "log_dropped", "removal_events"]
