"""What arrives on ``{prefix}/{site}/alerts`` and what the hub answers on
``{prefix}/{site}/results`` and ``{prefix}/{site}/workorders/{id}``. Pure: no I/O.

An alert is accepted only when it is JSON, carries ``"schema": "edge-agent/alert@1"``,
names the same site as its topic, the site is configured, and its fields have the right
types. Anything else is a :class:`Rejection` with a short machine-readable reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final, cast

from edge_agent.alerts import (
    ALERT_SCHEMA,
    PRIORITY_ORDER,
    AlertMessage,
    format_time_ns,
    parse_time,
)
from edge_agent.config.models import SITE_ID_PATTERN

RESULT_SCHEMA: Final = "edge-agent/result@1"
WORK_ORDER_SCHEMA: Final = "edge-agent/workorder@1"
_SITE_RE: Final = re.compile(SITE_ID_PATTERN)
_EVENTS: Final = frozenset({"activated", "escalated", "cleared", "chattering"})
_SCALAR: Final = (int, float, bool, str, type(None))
MAX_ID_CHARS: Final = 256

REJECT_REASONS: Final = (
    "bad_topic",
    "too_large",
    "not_json",
    "not_an_object",
    "wrong_schema",
    "site_mismatch",
    "unknown_site",
    "invalid_fields",
)
"""Every reason an alert message can be rejected for (a label of the rejection counter)."""


@dataclass(frozen=True)
class Rejection:
    """Why a message was refused. ``site`` is the site the answer can go to, if any."""

    reason: str
    detail: str
    site: str | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class TopicParts:
    site: str
    kind: str  # "alerts" or "status"


def parse_topic(prefix: str, topic: str) -> TopicParts | None:
    """``edge/v1/plant-a/alerts`` → (``plant-a``, ``alerts``); None if it is not ours."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    rest = topic[len(head) :].split("/")
    if len(rest) != 2 or rest[1] not in ("alerts", "status") or not _SITE_RE.match(rest[0]):
        return None
    return TopicParts(rest[0], rest[1])


def validate_alert(
    topic_site: str, payload: bytes, *, known_sites: frozenset[str] | set[str], max_bytes: int
) -> AlertMessage | Rejection:
    """The alert message, or why it is refused. Never raises."""
    if len(payload) > max_bytes:
        return Rejection("too_large", f"{len(payload)} bytes > limit {max_bytes}", topic_site)
    try:
        # UTF-8 only (json.loads would also take UTF-16/32 bytes): the hub stores the text.
        data: Any = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return Rejection("not_json", f"not JSON: {type(exc).__name__}", topic_site)
    if not isinstance(data, dict):
        return Rejection("not_an_object", "a JSON object is expected", topic_site)
    event_id = data.get("event_id")
    event_id = event_id if isinstance(event_id, str) and len(event_id) <= MAX_ID_CHARS else None
    schema = data.get("schema")
    if schema != ALERT_SCHEMA:
        shown = schema if isinstance(schema, str) else type(schema).__name__
        return Rejection(
            "wrong_schema",
            f"schema {str(shown)[:64]!r}, expected {ALERT_SCHEMA}",
            topic_site,
            event_id,
        )
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
    problem = _field_problem(data)
    if problem is not None:
        return Rejection("invalid_fields", problem, topic_site, event_id)
    return cast(AlertMessage, data)


def _text(data: dict[str, Any], key: str, *, limit: int = MAX_ID_CHARS) -> str | None:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        return f"{key}: a text of 1..{limit} characters is required"
    return None


def _field_problem(data: dict[str, Any]) -> str | None:
    """The first field of an alert that is missing or of the wrong type, or None."""
    for key in ("event_id", "alert_id", "rule", "sensor", "time"):
        problem = _text(data, key)
        if problem:
            return problem
    if data.get("event") not in _EVENTS:
        return f"event: one of {', '.join(sorted(_EVENTS))} is required"
    if data.get("priority") not in PRIORITY_ORDER:
        return "priority: one of NONE, LOW, MEDIUM, HIGH is required"
    try:
        parse_time(data["time"])
    except ValueError as exc:
        return f"time: {exc}"
    if not isinstance(data.get("time_ns"), int) or isinstance(data.get("time_ns"), bool):
        return "time_ns: an integer is required"
    for key in ("value", "peak", "limit", "unit"):
        if not isinstance(data.get(key), _SCALAR):
            return f"{key}: a number, text, true/false or null is required"
    if not isinstance(data.get("notify", True), bool):
        return "notify: true or false is required"
    asset = data.get("asset")
    if not isinstance(asset, dict) or not isinstance(asset.get("id"), str):
        return "asset: an object with an id is required"
    mx_id = asset.get("maintainx_id")
    if mx_id is not None and (not isinstance(mx_id, int) or isinstance(mx_id, bool)):
        return "asset.maintainx_id: an integer or null is required"
    request = data.get("work_order")
    if not isinstance(request, dict) or _text(request, "title", limit=1000):
        return "work_order: an object with a title is required"
    if not isinstance(request.get("description", ""), str):
        return "work_order.description: a text is required"
    for key in ("categories", "assignees"):
        if not isinstance(request.get(key, []), list):
            return f"work_order.{key}: a list is required"
    location = request.get("location_id")
    if location is not None and (not isinstance(location, int) or isinstance(location, bool)):
        return "work_order.location_id: an integer or null is required"
    related = data.get("related_work_order")
    if related is not None and (not isinstance(related, int) or isinstance(related, bool)):
        return "related_work_order: an integer is required"
    return None


def result_payload(
    site: str,
    *,
    status: str,
    time_ns: int,
    event_id: str | None = None,
    alert_id: str | None = None,
    rule: str | None = None,
    action: str | None = None,
    work_order_id: int | None = None,
    reason: str | None = None,
    detail: str | None = None,
) -> bytes:
    """The JSON published on ``{prefix}/{site}/results``. ``status`` is ``ok`` (applied,
    ``action`` says how), ``parked`` (kept, will be applied later) or ``rejected``."""
    body: dict[str, Any] = {
        "schema": RESULT_SCHEMA,
        "site": site,
        "status": status,
        "event_id": event_id,
        "alert_id": alert_id,
        "rule": rule,
        "action": action,
        "work_order_id": work_order_id,
        "time": format_time_ns(time_ns),
    }
    if reason is not None:
        body["reason"] = reason
    if detail is not None:
        body["detail"] = detail
    return json.dumps(body, separators=(",", ":")).encode()


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
) -> bytes:
    """The retained JSON on ``{prefix}/{site}/workorders/{id}``."""
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
        },
        separators=(",", ":"),
    ).encode()
