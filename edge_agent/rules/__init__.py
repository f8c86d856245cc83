"""Alarm rules: readings and clock ticks in, alarm events out (see ``docs/rules.md``).

Pure and deterministic; the only I/O is :class:`RuleStateStore`, which the caller passes in.
"""

from edge_agent.rules.engine import RuleEngine
from edge_agent.rules.events import STATE_NAMES, AlarmEvent, AlarmEventKind
from edge_agent.rules.render import TEMPLATE_FIELDS, render_template, to_alert_message
from edge_agent.rules.snapshot import SnapshotError
from edge_agent.rules.store import RuleStateStore, StateStoreError

__all__ = [
    "STATE_NAMES",
    "TEMPLATE_FIELDS",
    "AlarmEvent",
    "AlarmEventKind",
    "RuleEngine",
    "RuleStateStore",
    "SnapshotError",
    "StateStoreError",
    "render_template",
    "to_alert_message",
]
