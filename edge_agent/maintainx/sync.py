"""The one place where an alarm event becomes MaintainX calls.

:func:`apply_alert` is idempotent: an event already applied is skipped (``is_done``), an
episode that has a work order never gets a second one (``work_order_for``), and a create
whose outcome was unknown is looked up before it is repeated (``begin_create``). Errors from
the client propagate unchanged; the caller decides between retrying and dead-lettering.
Used by the site's MaintainX forwarder and by the hub.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from edge_agent.alerts import PRIORITY_ORDER, AlertMessage, parse_time
from edge_agent.common.local_time import local_text
from edge_agent.common.value_text import number_text
from edge_agent.maintainx.client import MaintainXClient
from edge_agent.maintainx.errors import (
    BadRequest,
    CredentialsRejected,
    MaintainXError,
    OutcomeUnknown,
    RateLimited,
    TransientError,
)
from edge_agent.maintainx.ledger import WorkOrderLedger

log = logging.getLogger(__name__)

GATEWAY_STATUSES: Final = frozenset({502, 504})
"""Answers from a proxy in front of MaintainX: the create may have been applied behind it."""
ABANDONED: Final = (BadRequest, CredentialsRejected, RateLimited, TransientError)
"""Failures of a create that say it was not applied (a gateway's 502/504 aside)."""
SETTLE_TIMEOUTS: Final = 3
"""After a create whose outcome is unknown, no one retries its event (and looks up the work
order it may have made) sooner than this many client timeouts: a create held up on a slow
link can still reach MaintainX after the client gave up on it, and a lookup before it lands
makes a second work order (found by the fault campaign: a delayed link, two hub replicas)."""
LOOKUP_SKEW: Final = timedelta(days=1)
"""A lost create is searched for among work orders created after the event's time minus
this (the site's clock may be off; the work order cannot predate its alarm by more)."""
LOOKUP_MAX_PAGES: Final = 5
"""Pages of 200 same-title work orders searched, newest first."""
LOOKUP_MAX_OTHERS: Final = 5
"""Same-title work orders whose description does not name the alert that are still checked."""
AUDIT_EVENTS: Final = frozenset(
    {"shelved", "unshelved", "out_of_service", "returned_to_service", "acknowledged"}
)
"""The alarm lifecycle's audit events: recorded (the hub keeps them), no MaintainX call."""
REOPEN_STATUS: Final = "OPEN"
"""A repair that did not hold: its work order goes back to this status (never a new one)."""


@dataclass(frozen=True)
class SyncResult:
    """What :func:`apply_alert` did. ``action`` is one of: created, found (an earlier create
    that had reached MaintainX), exists, escalated, commented, reopened (a failed repair's
    work order set back to OPEN), suppressed, recorded (an audit event: no MaintainX call),
    no_work_order, duplicate (event already applied)."""

    event_id: str
    alert_id: str
    action: str
    work_order_id: int | None = None


def settle_s(exc: MaintainXError, timeout_s: float) -> float:
    """How long the event of a failed request must rest before anyone tries it again:
    :data:`SETTLE_TIMEOUTS` client timeouts after a create that may have reached MaintainX
    (a timeout, a gateway's 502/504), else 0."""
    return SETTLE_TIMEOUTS * timeout_s if exc.create_unconfirmed else 0.0


def work_order_body(
    message: AlertMessage, *, asset_id: int | None, location_id: int | None
) -> dict[str, Any]:
    """The ``POST /workorders`` body for an alarm episode."""
    request = message["work_order"]
    description = request.get("description") or ""
    footer = f"Alert id: {message['alert_id']} (site {message['site']}, rule {message['rule']})"
    body: dict[str, Any] = {
        "title": request["title"],
        "description": f"{description}\n\n{footer}" if description else footer,
        "priority": message["priority"],
        "externalData": {"alert_id": message["alert_id"], "site": message["site"]},
    }
    if asset_id is not None:
        body["assetId"] = asset_id
    if location_id is not None:
        body["locationId"] = location_id
    if request.get("categories"):
        body["categories"] = list(request["categories"])
    # Only well-formed assignees are sent (edge_agent.wire.alert refuses the others first;
    # this keeps a message that skipped that check from raising here).
    assignees = [
        {"type": a["type"], "id": a["id"]}
        for a in request.get("assignees") or []
        if isinstance(a, dict) and "type" in a and "id" in a
    ]
    if assignees:
        body["assignees"] = assignees
    if request.get("due_date"):
        body["dueDate"] = request["due_date"]
    return body


async def find_existing_work_order(
    client: MaintainXClient, message: AlertMessage, *, asset_id: int | None
) -> int | None:
    """Look for a work order an earlier, unconfirmed create made for this alert: recent work
    orders with the same title (on the same asset), newest first, then
    ``externalData.alert_id`` on each. The list does not carry ``externalData``, so
    candidates are fetched one by one: first those whose description names the alert (ours
    always does), page by page; then, if none matched, the newest few others (a person may
    have rewritten the description)."""
    alert_id = message["alert_id"]
    title = message["work_order"]["title"]
    since = datetime.fromtimestamp(parse_time(message["time"]) / 1e9, tz=UTC) - LOOKUP_SKEW
    filters: dict[str, Any] = {
        "title": title,
        "sort": "-createdAt",
        "createdAt_gte": since.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }
    if asset_id is not None:
        filters["assets"] = [asset_id]
    others: list[int] = []
    async for item in client.list_work_orders(limit=200, max_pages=LOOKUP_MAX_PAGES, **filters):
        if item.get("title") != title:
            continue
        if alert_id in str(item.get("description") or ""):
            if await _is_ours(client, int(item["id"]), alert_id):
                return int(item["id"])
        elif len(others) < LOOKUP_MAX_OTHERS:
            others.append(int(item["id"]))
    for work_order_id in others:
        if await _is_ours(client, work_order_id, alert_id):
            return work_order_id
    return None


async def _is_ours(client: MaintainXClient, work_order_id: int, alert_id: str) -> bool:
    external = (await client.get_work_order(work_order_id)).get("externalData")
    return isinstance(external, dict) and external.get("alert_id") == alert_id


async def apply_alert(
    client: MaintainXClient,
    ledger: WorkOrderLedger,
    message: AlertMessage,
    *,
    asset_id: int | None,
    location_id: int | None = None,
) -> SyncResult:
    """Apply one alarm event to MaintainX, at most once per ``event_id``.

    - ``activated`` with ``notify``: create the episode's work order (unless it exists).
    - ``escalated``: raise the work order's priority (never lower it) and comment; with no
      work order yet and ``notify``, create one at the escalated priority.
    - ``cleared``: comment "Returned to normal at …".
    - ``chattering``: comment if a work order exists.
    - ``notify`` false never creates a work order (result ``suppressed``).
    - The alarm lifecycle (``edge-agent/alert@2``, :func:`_lifecycle`): a message ``held``
      for maintenance comments on the work order it names; ``held`` shelved or out of
      service does nothing (``suppressed``); ``verified`` comments; ``reopened`` sets the
      work order back to OPEN and comments; audit events are ``recorded``, no call.
    """
    event_id = message["event_id"]
    alert_id = message["alert_id"]
    if await ledger.is_done(event_id):
        return SyncResult(event_id, alert_id, "duplicate", await ledger.work_order_for(alert_id))

    kind: str = message["event"]  # str, not the Literal: a newer sender may add kinds
    work_order_id = await ledger.work_order_for(alert_id)
    lifecycle = await _lifecycle(client, message, work_order_id)
    if lifecycle is not None:
        action, work_order_id = lifecycle
    elif kind == "activated" or (kind == "escalated" and work_order_id is None):
        if work_order_id is not None:
            action = "exists"
        elif not message.get("notify", True):
            action = "suppressed"
        else:
            work_order_id, action = await _create(
                client, ledger, message, asset_id=asset_id, location_id=location_id
            )
    elif work_order_id is None:
        action = "no_work_order"
    elif kind == "escalated":
        await _escalate(client, work_order_id, message)
        action = "escalated"
    elif kind == "cleared":
        await client.add_comment(work_order_id, _cleared_text(message))
        action = "commented"
    elif kind == "chattering":
        await client.add_comment(work_order_id, _chattering_text(message))
        action = "commented"
    else:
        action = "ignored"
        log.warning("Unknown alert event kind.", extra={"event_id": event_id, "kind": kind})
    await ledger.mark_done(event_id, action)
    return SyncResult(event_id, alert_id, action, work_order_id)


async def _lifecycle(
    client: MaintainXClient, message: AlertMessage, episode_work_order: int | None
) -> tuple[str, int | None] | None:
    """The MaintainX side of a lifecycle message: ``(action, work order)``, or None for a
    message the classic path handles. Never creates a work order. The work order is the one
    the message names (``work_order_id``: a held message names the asset's maintenance work
    order, not its episode's), else the episode's."""
    kind: str = message["event"]
    held = message.get("held")
    named = message.get("work_order_id")
    target = named if type(named) is int and named > 0 else episode_work_order
    if kind in AUDIT_EVENTS:
        return "recorded", episode_work_order
    if held is not None:
        comment = message.get("comment")
        if held != "maintenance" or not comment or named is None or target is None:
            return "suppressed", episode_work_order
        await client.add_comment(target, _lifecycle_text(message, str(comment)))
        return "commented", target
    if kind == "verified":
        if target is None:
            return "no_work_order", None
        await client.add_comment(target, _lifecycle_text(message, _verified_text(message)))
        return "commented", target
    if kind == "reopened":
        if target is None:
            return "no_work_order", None
        # The status first: a retry after a lost answer sets it again (no change, no
        # webhook); the comment after it says why.
        await client.set_status(target, REOPEN_STATUS)
        await client.add_comment(target, _lifecycle_text(message, _reopened_text(message)))
        return "reopened", target
    return None


def _lifecycle_text(message: AlertMessage, text: str) -> str:
    text = text.rstrip()
    end = "" if text.endswith((".", "!", "?", ")")) else "."
    return f"{text}{end} Alert id: {message['alert_id']}"


def _verified_text(message: AlertMessage) -> str:
    """The engine's words (``verified: <sensor> normal for …``), else a plain one."""
    comment = message.get("comment")
    if comment:
        return str(comment)
    return (
        f"Verified at {when_text(message)}: {reading_text(message)} stayed normal after the repair"
    )


def _reopened_text(message: AlertMessage) -> str:
    """The engine's words (``reopened: <sensor> was …``), else a plain one."""
    comment = message.get("comment")
    if comment:
        return str(comment)
    return f"Reopened at {when_text(message)}: {reading_text(message)} not normal after the repair"


async def _create(
    client: MaintainXClient,
    ledger: WorkOrderLedger,
    message: AlertMessage,
    *,
    asset_id: int | None,
    location_id: int | None,
) -> tuple[int, str]:
    alert_id = message["alert_id"]
    maybe_sent = await ledger.begin_create(alert_id)
    if maybe_sent:
        found = await find_existing_work_order(client, message, asset_id=asset_id)
        if found is not None:
            log.info(
                "Found the work order of an earlier unconfirmed create.",
                extra={"alert_id": alert_id, "work_order_id": found},
            )
            await ledger.record_created(alert_id, found)
            return found, "found"
    body = work_order_body(message, asset_id=asset_id, location_id=location_id)
    try:
        work_order_id = await client.create_work_order(body)
    except MaintainXError as exc:
        # MaintainX answered (or nobody was reached): nothing was created, so the next
        # attempt need not search. OutcomeUnknown, and a gateway's 502/504 (the backend may
        # have stored it), leave the attempt open.
        if isinstance(exc, OutcomeUnknown) or exc.status in GATEWAY_STATUSES:
            exc.create_unconfirmed = True
        elif isinstance(exc, ABANDONED):
            await ledger.abandon_create(alert_id)
        raise
    await ledger.record_created(alert_id, work_order_id)
    return work_order_id, "created"


async def _escalate(client: MaintainXClient, work_order_id: int, message: AlertMessage) -> None:
    new_priority = message["priority"]
    current = await client.get_work_order(work_order_id)
    current_rank = PRIORITY_ORDER.get(str(current.get("priority") or "NONE"), 0)
    if PRIORITY_ORDER.get(new_priority, 0) > current_rank:
        await client.update_priority(work_order_id, new_priority)
    await client.add_comment(work_order_id, _escalated_text(message))


def reading_text(message: AlertMessage) -> str:
    unit = f" {message['unit']}" if message.get("unit") else ""
    return f"{message.get('sensor', '?')} = {value_text(message, 'value')}{unit}"


def value_text(message: AlertMessage, key: str) -> str:
    """A number of the message as a person reads it: to the sensor's ``decimals`` when the
    message carries them (not ``300.1021901976017``)."""
    decimals = message.get("decimals")
    return number_text(message.get(key), decimals if type(decimals) is int else None)


def when_text(message: AlertMessage) -> str:
    """The event's time as a person reads it: to the second, in the site's time zone when the
    message names one (else UTC), not ``2026-12-04T14:54:21.432641674Z``."""
    time_ns = message.get("time_ns")
    if type(time_ns) is not int:
        return str(message.get("time", "?"))
    name = message.get("timezone")
    try:
        return local_text(time_ns, name if isinstance(name, str) else "UTC", strict=True)
    except ValueError:  # a zone this host's tzdata does not know: UTC says the same moment
        return local_text(time_ns, "UTC")


async def has_reactivation_comment(
    client: MaintainXClient, work_order_id: int, message: AlertMessage
) -> bool:
    """True when the work order already carries this alert's re-activation comment (an
    earlier try posted it and its answer was lost)."""
    marker = f"Alert id: {message['alert_id']}"
    async for comment in client.list_comments(work_order_id):
        content = str(comment.get("content") or "")
        if content.startswith("Re-activated at ") and content.endswith(marker):
            return True
    return False


def reactivated_text(message: AlertMessage) -> str:
    return (
        f"Re-activated at {when_text(message)}: {reading_text(message)} "
        f"(limit {value_text(message, 'limit')}). Alert id: {message['alert_id']}"
    )


def _escalated_text(message: AlertMessage) -> str:
    return (
        f"Escalated to {message['priority']} at {when_text(message)}: {reading_text(message)} "
        f"(limit {value_text(message, 'limit')}). Alert id: {message['alert_id']}"
    )


def _cleared_text(message: AlertMessage) -> str:
    peak = message.get("peak")
    peak_text = f", peak {value_text(message, 'peak')}" if peak is not None else ""
    return (
        f"Returned to normal at {when_text(message)}: {reading_text(message)}{peak_text}. "
        f"Alert id: {message['alert_id']}"
    )


def _chattering_text(message: AlertMessage) -> str:
    return (
        f"Alarm is chattering (repeatedly activating and clearing) as of {when_text(message)}: "
        f"{reading_text(message)}. Alert id: {message['alert_id']}"
    )
