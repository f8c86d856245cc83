"""The hub's answer to one alert (``edge-agent/result@1`` on ``{prefix}/{site}/results``):
what the hub writes (:func:`result_payload`) and what the agent reads (:func:`parse_result`),
in one place. Pure: no I/O.

The contract (docs/outbox.md, "Confirmation by the hub"): a result is JSON with at least
``event_id``, ``alert_id`` and ``status`` in :data:`RESULT_STATUSES`, all final for the
agent; ``rejected`` becomes a dead letter with the hub's ``reason``/``detail`` (a rejection
with ``alert_id: null`` is accepted: the hub may not have been able to read it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from edge_agent.alerts import format_time_ns
from edge_agent.errors import EdgeAgentError
from edge_agent.redaction import redact_value
from edge_agent.wire.alert import MAX_ID_CHARS

RESULT_SCHEMA: Final = "edge-agent/result@1"
RESULT_STATUSES: Final = ("ok", "parked", "rejected")
"""Every status the hub answers with; each is final for the agent."""
MAX_DETAIL_CHARS: Final = 500
"""A reason or detail the hub writes is cut to this."""
MAX_RESULT_BYTES: Final = 64 * 1024
"""A result is a few hundred bytes; anything far larger is refused unread."""
MAX_REASON_CHARS: Final = 500
"""The dead letter's reason the agent makes of a rejection is cut to this."""


class BadMessage(EdgeAgentError, ValueError):
    """A result or presence message that does not follow the contract (counted, logged)."""


@dataclass(frozen=True)
class HubResult:
    """What the hub did with one event."""

    event_id: str
    alert_id: str | None
    """None only in a ``rejected`` result (the hub could not read the alert id)."""
    status: str
    reason: str


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
    """The JSON the hub publishes on ``{prefix}/{site}/results``. ``status`` is ``ok``
    (applied, ``action`` says how), ``parked`` (kept, will be applied later) or ``rejected``
    (never applied; ``reason`` says why). Every text passes the redactor: a detail may quote
    an error that quoted a key."""
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
        body["reason"] = reason[:MAX_DETAIL_CHARS]
    if detail is not None:
        body["detail"] = detail[:MAX_DETAIL_CHARS]
    # Every text, the echoed ids too: a site that put a key into an id must not get it back.
    return json.dumps(redact_value(body), separators=(",", ":")).encode()


def loads_object(payload: bytes) -> dict[str, Any]:
    """A small JSON object (a result, a hub presence), or :class:`BadMessage`."""
    if len(payload) > MAX_RESULT_BYTES:
        raise BadMessage(f"{len(payload)} bytes, more than {MAX_RESULT_BYTES}")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadMessage(f"not JSON: {type(exc).__name__}") from exc
    if not isinstance(data, dict):
        raise BadMessage("not a JSON object")
    return data


def _text(data: dict[str, Any], key: str, limit: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BadMessage(f"{key} is not a string of 1 to {limit} characters")
    return value


def parse_result(payload: bytes) -> HubResult:
    """One message of ``{prefix}/{site}/results``, as the agent reads it; raises
    :class:`BadMessage`."""
    data = loads_object(payload)
    event_id = _text(data, "event_id", MAX_ID_CHARS)
    status = data.get("status")
    if not isinstance(status, str) or status not in RESULT_STATUSES:
        raise BadMessage(f"status is not one of {', '.join(RESULT_STATUSES)}")
    # A message the hub refused may carry no usable alert id (that may be why it was
    # refused): a rejection naming the event is enough. ok/parked must name both.
    alert_id = (
        None
        if status == "rejected" and data.get("alert_id") is None
        else _text(data, "alert_id", MAX_ID_CHARS)
    )
    reason = ""
    if status == "rejected":
        parts = [data.get("reason"), data.get("detail")]
        reason = ": ".join(str(p) for p in parts if isinstance(p, str | int) and p != "")
        reason = f"rejected by the hub: {reason or 'no reason given'}"[:MAX_REASON_CHARS]
    return HubResult(event_id, alert_id, status, reason)
