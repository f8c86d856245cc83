"""The alarm lifecycle's settings that parse but cannot be meant: an ``ack_within`` of 0s,
a verification window no reading falls into, a maintenance that lasts past the repair."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from edge_agent.config.checks.common import items_of, rules_of
from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.document import Document
from edge_agent.config.units import format_duration, parse_duration

# Work-order statuses that end the work: an asset "under maintenance" while one of its work
# orders is DONE would hold its alarms after every repair, for good.
_CLOSED: Final = ("DONE", "CANCELED")


def _duration(doc: Document, *path: str | int) -> int | None:
    raw = doc.get(*path)
    if raw is None:
        return None
    try:
        return parse_duration(raw)
    except ValueError:
        return None  # the model reports a malformed duration


def _poll_of(doc: Document, sensor: object) -> int | None:
    """The poll interval the rule's sensor is read at (its connection's or the default)."""
    if not isinstance(sensor, str):
        return None
    connection = doc.get("sensors", sensor, "connection")
    raw = doc.get("connections", connection, "poll") if isinstance(connection, str) else None
    try:
        return parse_duration(raw if raw is not None else (doc.get("defaults", "poll") or "1s"))
    except ValueError:
        return None


def check_lifecycle(doc: Document) -> Iterator[Diagnostic]:
    """``ack_within``, ``verify_for`` and ``maintenance: {while: ...}`` as meant."""
    for index, rule in rules_of(doc):
        if _duration(doc, "rules", index, "ack_within") == 0:
            yield doc.at(
                ("rules", index, "ack_within"),
                "`ack_within` must be longer than 0s: every alarm would be overdue at once "
                "(leave it out to not escalate unacknowledged alarms)",
            )
        verify_for = _duration(doc, "rules", index, "verify_for")
        poll = _poll_of(doc, rule.get("sensor"))
        if verify_for and poll is not None and verify_for <= poll:
            yield doc.at(
                ("rules", index, "verify_for"),
                f"verify_for {format_duration(verify_for)} is not longer than the sensor's poll "
                f"interval {format_duration(poll)}: a repair would be judged on one reading "
                "at most (write 0s to not verify repairs)",
                "warning",
            )
    for asset_id, asset in items_of(doc.get("assets")):
        maintenance = asset.get("maintenance")
        statuses = maintenance.get("while") if isinstance(maintenance, dict) else None
        if not isinstance(statuses, list):
            continue
        for position, status in enumerate(statuses):
            here = ("assets", asset_id, "maintenance", "while", position)
            if status in _CLOSED:
                yield doc.at(
                    here,
                    f"{status} ends a work order: the asset's alarms would be held after every "
                    "repair; maintenance is a status of work in progress (IN_PROGRESS, ON_HOLD)",
                )
            elif status in statuses[:position]:
                yield doc.at(here, f"{status} is listed twice", "warning")
