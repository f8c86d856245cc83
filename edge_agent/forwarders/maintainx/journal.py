"""One INFO line per work order the agent touched, so that an alarm can be traced to its
work order from the journal alone (``journalctl -u edge-agent | grep alert_id``)."""

from __future__ import annotations

import logging
from typing import Final

from edge_agent.alerts import AlertMessage
from edge_agent.maintainx.sync import SyncResult

log = logging.getLogger("edge_agent.forwarders.maintainx")

MESSAGES: Final = {
    "created": "Work order created.",
    "found": "Work order of an earlier unconfirmed create found.",
    "escalated": "Work order escalated.",
    "commented": "Work order commented.",
}
"""Actions that reached a work order; the others (duplicate, exists, suppressed...) log at
debug level only."""


def log_work_order(message: AlertMessage, result: SyncResult) -> None:
    """The journal line of one applied alert event (debug when no work order changed)."""
    fields = {
        "rule": message.get("rule"),
        "alert_id": result.alert_id,
        "work_order_id": result.work_order_id,
        "alert_event": message.get("event"),
        "event_id": result.event_id,
        "action": result.action,
    }
    text = MESSAGES.get(result.action)
    if text is None:
        log.debug("Alert applied to MaintainX; no work order changed.", extra=fields)
        return
    log.info(text, extra=fields)
