"""What arrives on ``{prefix}/{site}/alerts`` and what the hub answers on
``{prefix}/{site}/results`` and ``{prefix}/{site}/workorders/{id}``. Pure: no I/O.

An alert is accepted only when it is JSON, carries a schema this release reads
(``edge-agent/alert@1`` and the one before it, see ``ACCEPTED_ALERT_SCHEMAS``), names the
same site as its topic, the site is configured, and every field is within the
bounds of :mod:`edge_agent.wire.alert` (the schema the agent writes with). Anything else is a
:class:`Rejection` with a short machine-readable reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from edge_agent.alerts import AlertMessage
from edge_agent.wire import topics
from edge_agent.wire.alert import (
    MAX_ID_CHARS,
    alert_problem,
    json_texts_storable,
    schema_problem,
)

if TYPE_CHECKING:
    from edge_agent.hub.store import WorkOrderRef

WORK_ORDER_SCHEMA: Final = "edge-agent/workorder@1"

REJECT_REASONS: Final = (
    "bad_topic",
    "too_large",
    "not_json",
    "not_an_object",
    "wrong_schema",
    "site_mismatch",
    "unknown_site",
    "invalid_fields",
    "poison",
    "maintainx_refused",
)
"""Every reason an alert message can be rejected for (a label of the rejection counter)."""


@dataclass(frozen=True)
class Rejection:
    """Why a message was refused. ``site`` is the site the answer can go to, if any."""

    reason: str
    detail: str
    site: str | None = None
    event_id: str | None = None


def validate_alert(
    topic_site: str, payload: bytes, *, known_sites: frozenset[str] | set[str], max_bytes: int
) -> AlertMessage | Rejection:
    """The alert message, or why it is refused. Never raises."""
    if len(payload) > max_bytes:
        return Rejection("too_large", f"{len(payload)} bytes > limit {max_bytes}", topic_site)
    try:
        # UTF-8 only (json.loads would also take UTF-16/32 bytes): the hub stores the text.
        data: Any = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError: also JSON the parser takes but Python refuses (a number of more than
        # 4,300 digits), not only JSONDecodeError.
        return Rejection("not_json", f"not JSON: {type(exc).__name__}", topic_site)
    if not isinstance(data, dict):
        return Rejection("not_an_object", "a JSON object is expected", topic_site)
    event_id = data.get("event_id")
    event_id = event_id if isinstance(event_id, str) and len(event_id) <= MAX_ID_CHARS else None
    problem = schema_problem(data.get("schema"))
    if problem is not None:
        return Rejection("wrong_schema", problem, topic_site, event_id)
    payload_site = data.get("site")
    if payload_site != topic_site:
        # The topic's site is the one the broker let this client publish to: answer there,
        # and never let the payload borrow another site's key.
        return Rejection(
            "site_mismatch",
            f"payload site {str(payload_site)[:64]!r} is not the topic's site {topic_site!r}",
            topic_site,
            event_id,
        )
    if topic_site not in known_sites:
        # Answered on the topic's site all the same: its sender learns it is not served.
        return Rejection(
            "unknown_site", f"site {topic_site!r} is not configured", topic_site, event_id
        )
    # A payload without a \u escape cannot carry a NUL or a lone surrogate: the walk over
    # every text for them was half of the validation's time (issue 16).
    problem = alert_problem(data, texts_storable=json_texts_storable(payload))
    if problem is not None:
        return Rejection("invalid_fields", problem, topic_site, event_id)
    return cast(AlertMessage, data)


def work_order_payload(
    site: str,
    *,
    work_order_id: int,
    status: str,
    old_status: str | None,
    alert_id: str,
    rule: str,
    asset: str,
    occurred_at: str | None,
    assigned: bool | None = None,
) -> bytes:
    """The retained JSON on ``{prefix}/{site}/workorders/{id}``. ``assigned`` (whether the
    work order has an assignee, when the webhook said: the alarm lifecycle acknowledges an
    alarm whose work order is assigned) is left out when unknown."""
    extra = {} if assigned is None else {"assigned": assigned}
    return json.dumps(
        {
            "schema": WORK_ORDER_SCHEMA,
            "site": site,
            "work_order_id": work_order_id,
            "status": status,
            "old_status": old_status,
            "alert_id": alert_id,
            "rule": rule,
            "asset": asset,
            "occurred_at": occurred_at,
            **extra,
        },
        separators=(",", ":"),
    ).encode()


def work_order_status(
    prefix: str,
    ref: WorkOrderRef,
    old_status: str | None,
    occurred_at: str | None,
    assigned: bool | None = None,
) -> tuple[str, bytes]:
    """The retained ``(topic, payload)`` that tells a site its work order's status (from a
    webhook, or from MaintainX when the hub asked)."""
    payload = work_order_payload(
        ref.site,
        work_order_id=ref.work_order_id,
        status=ref.status,
        old_status=old_status,
        alert_id=ref.alert_id,
        rule=ref.rule,
        asset=ref.asset,
        occurred_at=occurred_at,
        assigned=assigned,
    )
    return topics.work_order(prefix, ref.site, ref.work_order_id), payload


def webhook_assigned(data: dict[str, Any]) -> bool | None:
    """Whether a status-change webhook's ``newWorkOrder`` has an assignee (``assigneeIds``
    or ``teamIds``); None when the payload does not say."""
    new = data.get("newWorkOrder")
    if not isinstance(new, dict):
        return None
    lists = [new.get(key) for key in ("assigneeIds", "teamIds")]
    if not any(isinstance(value, list) for value in lists):
        return None
    return any(isinstance(value, list) and len(value) > 0 for value in lists)
