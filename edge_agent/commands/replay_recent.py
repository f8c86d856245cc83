"""``edge-agent replay SITE --recent 24h [--rules EDITED.yaml]``: the plant's own last day
through the rules, and through an edit of them, side by side.

The readings come from the agent's history file (read beside the running agent). Each set
of rules runs on a fresh engine over the same readings; what is compared is the work orders
each would have made (an activation or escalation with ``notify``: time, rule, priority,
peak) and the chattering episodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from edge_agent.common.value_text import number_text
from edge_agent.config.models import SiteConfig
from edge_agent.readings import Reading
from edge_agent.rules.engine import RuleEngine
from edge_agent.rules.events import AlarmEvent

COLUMN: Final = 52


@dataclass
class Sketch:
    """A work order a set of rules would have made."""

    alert_id: str
    rule: str
    started_ns: int
    priority: str
    peak: object = None


@dataclass
class Outcome:
    work_orders: list[Sketch]
    chattering: int
    events: int


def events_of(config: SiteConfig, readings: Iterable[Reading], until_ns: int) -> list[AlarmEvent]:
    """The alarm events of ``readings`` on a fresh engine, the clock moved to ``until_ns``."""
    engine = RuleEngine(config)
    events: list[AlarmEvent] = []
    for reading in readings:
        events.extend(engine.feed(reading))
    events.extend(engine.tick(until_ns))
    return events


def outcome(events: Iterable[AlarmEvent]) -> Outcome:
    sketches: dict[str, Sketch] = {}
    chattering = count = 0
    for event in events:
        count += 1
        if event.kind == "chattering":
            chattering += 1
        if event.alert_id is None or event.rule_id is None:
            continue
        known = sketches.get(event.alert_id)
        if event.kind in ("activated", "escalated") and known is None and event.notify:
            known = sketches[event.alert_id] = Sketch(
                event.alert_id, event.rule_id, event.time_ns, event.priority or "NONE"
            )
        if known is None:
            continue
        if event.kind == "escalated" and event.priority:
            known.priority = event.priority
        if event.peak is not None:
            known.peak = event.peak
    return Outcome(sorted(sketches.values(), key=lambda s: s.started_ns), chattering, count)


def side_by_side(current: Outcome, edited: Outcome, zone: str) -> list[str]:
    """Both lists of work orders in time order, one per line, and the summary line."""
    from edge_agent.common.local_time import local_text

    def cell(sketch: Sketch | None) -> str:
        if sketch is None:
            return ""
        peak = f" peak {number_text(sketch.peak, None)}" if sketch.peak is not None else ""
        text = f"{local_text(sketch.started_ns, zone)[11:19]} {sketch.rule} {sketch.priority}{peak}"
        return text[:COLUMN]

    rows: list[tuple[Sketch | None, Sketch | None]] = []
    left, right = list(current.work_orders), list(edited.work_orders)
    while left or right:
        if (
            left
            and right
            and left[0].rule == right[0].rule
            and abs(left[0].started_ns - right[0].started_ns) < 60 * 10**9
        ):
            rows.append((left.pop(0), right.pop(0)))
        elif left and (not right or left[0].started_ns <= right[0].started_ns):
            rows.append((left.pop(0), None))
        else:
            rows.append((None, right.pop(0)))
    lines = [f"{'current rules':<{COLUMN}} | edited rules", f"{'-' * COLUMN}-+-{'-' * COLUMN}"]
    lines += [f"{cell(a):<{COLUMN}} | {cell(b)}" for a, b in rows]
    lines.append(summary(current, edited))
    return lines


def summary(current: Outcome, edited: Outcome) -> str:
    made, before = len(edited.work_orders), len(current.work_orders)
    text = (
        f"the edit makes {made} work order{'s' if made != 1 else ''} instead of {before}"
        if made != before
        else f"the edit makes the same number of work orders ({made})"
    )
    gone = current.chattering - edited.chattering
    if gone > 0:
        text += f"; {gone} chattering episode{'s' if gone != 1 else ''} gone"
    elif gone < 0:
        text += f"; {-gone} more chattering episode{'s' if gone != -1 else ''}"
    return text
