"""What the rule engine emits: one ``AlarmEvent`` per alarm or sensor transition."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from edge_agent.alerts import format_time_ns
from edge_agent.readings import Value

AlarmEventKind = Literal[
    "activated",
    "escalated",
    "cleared",
    "chattering",
    "stale",
    "fresh",
    "flood",
    # The alarm lifecycle (``lifecycle.py``): audit events of commands and work orders,
    # and the verdict on a repair.
    "shelved",
    "unshelved",
    "out_of_service",
    "returned_to_service",
    "acknowledged",
    "verified",
    "reopened",
]
LIFECYCLE_KINDS: Final = frozenset(
    {
        "shelved",
        "unshelved",
        "out_of_service",
        "returned_to_service",
        "acknowledged",
        "verified",
        "reopened",
    }
)

# Rule states (ISA-18.2 / OPC UA Part 9 words): the index is what the engine stores.
NORMAL: Final = 0
PENDING: Final = 1
ACTIVE: Final = 2
CLEARING: Final = 3
STATE_NAMES: Final = ("NORMAL", "PENDING", "ACTIVE", "CLEARING")

# Why an episode is open: its condition held, or its sensor went stale (``on_stale: alarm``).
CAUSE_CONDITION: Final = "condition"
CAUSE_STALE: Final = "stale"


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One transition.

    Rule events (``activated``, ``escalated``, ``cleared``, ``chattering``) carry the rule,
    its episode's ``alert_id`` and whether it should make a notification (``notify``).
    Sensor events (``stale``, ``fresh``) carry only the sensor. ``flood`` is the site's flood
    guard starting to hold notifications; it has neither rule nor sensor.

    The lifecycle's fields: ``held`` says which state held a notification (``shelved``,
    ``out_of_service``, ``maintenance``; ``notify`` is then False); ``by`` and ``reason``
    are a command's audit record; ``work_order_id`` is the work order concerned and
    ``comment`` the text to put on it; ``qualifier`` tells apart events of one kind in one
    episode (it goes into the event id). ``released`` is set on the ``activated`` that
    announces a held episode when its last hold ended (``shelved``, ``out_of_service``,
    ``maintenance``: the hold that ended; docs/rules.md, "Release").
    """

    time_ns: int
    kind: AlarmEventKind
    rule_id: str | None = None
    sensor_id: str | None = None
    value: Value = None
    priority: str | None = None
    alert_id: str | None = None
    notify: bool = False
    peak: Value = None
    limit: Value = None
    started_ns: int | None = None
    cause: str = CAUSE_CONDITION
    held: str | None = None
    by: str | None = None
    reason: str | None = None
    work_order_id: int | None = None
    comment: str | None = None
    qualifier: str = ""
    released: str | None = None

    @property
    def is_rule_event(self) -> bool:
        return self.rule_id is not None

    def to_replay_json(self) -> dict[str, Any]:
        """The line ``edge-agent replay`` prints for this event."""
        stamp = format_time_ns(self.time_ns)
        if self.rule_id is None:
            if self.sensor_id is None:
                return {"time": stamp, "event": self.kind}
            return {"time": stamp, "sensor": self.sensor_id, "event": self.kind}
        line: dict[str, Any] = {
            "time": stamp,
            "rule": self.rule_id,
            "event": self.kind,
            "value": self.value,
            "priority": self.priority,
            "alert_id": self.alert_id,
            "notify": self.notify,
            # Peak and limit reach the work-order text, so replay shows them too.
            "peak": self.peak,
            "limit": self.limit,
        }
        # The lifecycle's fields only when set: replay lines of plain rules stay as they were.
        for key in ("held", "released", "by", "reason", "work_order_id", "comment"):
            value = getattr(self, key)
            if value is not None:
                line[key] = value
        return line
