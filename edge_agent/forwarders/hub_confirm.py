"""Delivery confirmed by the hub: its results, its presence, and when to publish again.

Pure logic, no I/O: :mod:`edge_agent.forwarders.hub_tracking` feeds it the messages of
``{prefix}/{site}/results`` and ``{prefix}/hub/status/+`` and asks it what to resend.

The contract with the hub (docs/outbox.md, "Confirmation by the hub"):

- a result is JSON with at least ``event_id``, ``alert_id`` and ``status`` in ``ok``,
  ``parked``, ``rejected`` — all final for the agent; ``rejected`` becomes a dead letter with
  the hub's ``reason``/``detail`` (a rejection with ``alert_id: null`` is accepted: the hub
  may not have been able to read it);
- each hub replica keeps a retained ``{"state": "online"|"offline", ...}`` on
  ``{prefix}/hub/status/{replica}``; the hub is online when at least one replica's latest
  state is ``online``, offline when every known replica says ``offline``, and *unknown* when
  none was ever seen (then the agent resends on its timeout as if online).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

FINAL_STATUSES: Final = frozenset({"ok", "parked", "rejected"})
MAX_RESULT_BYTES: Final = 64 * 1024
"""A result is a few hundred bytes; anything far larger is refused unread."""
MAX_ID_CHARS: Final = 256
MAX_REASON_CHARS: Final = 500
REPLICA_ID: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

Presence = Literal["unknown", "online", "offline"]


class BadMessage(ValueError):
    """A result or presence message that does not follow the contract (counted, logged)."""


@dataclass(frozen=True)
class HubResult:
    """What the hub did with one event."""

    event_id: str
    alert_id: str | None
    """None only in a ``rejected`` result (the hub could not read the alert id)."""
    status: str
    reason: str


def _text(data: dict[str, Any], key: str, limit: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BadMessage(f"{key} is not a string of 1 to {limit} characters")
    return value


def _loads(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_RESULT_BYTES:
        raise BadMessage(f"{len(payload)} bytes, more than {MAX_RESULT_BYTES}")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadMessage(f"not JSON: {type(exc).__name__}") from exc
    if not isinstance(data, dict):
        raise BadMessage("not a JSON object")
    return data


def parse_result(payload: bytes) -> HubResult:
    """One message of ``{prefix}/{site}/results``; raises :class:`BadMessage`."""
    data = _loads(payload)
    event_id = _text(data, "event_id", MAX_ID_CHARS)
    status = data.get("status")
    if not isinstance(status, str) or status not in FINAL_STATUSES:
        raise BadMessage("status is not one of ok, parked, rejected")
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


class HubPresence:
    """The latest retained state of every hub replica seen; see the module doc."""

    def __init__(self) -> None:
        self.replicas: dict[str, str] = {}

    @property
    def state(self) -> Presence:
        if not self.replicas:
            return "unknown"
        if any(state == "online" for state in self.replicas.values()):
            return "online"
        return "offline"

    def update(self, replica: str, payload: bytes) -> None:
        """Apply one message of ``{prefix}/hub/status/{replica}``; an empty payload (a
        retained message cleared) forgets the replica. Raises :class:`BadMessage`."""
        if not REPLICA_ID.match(replica):
            raise BadMessage("the topic does not end in a valid replica id")
        if not payload:
            self.replicas.pop(replica, None)
            return
        data = _loads(payload)
        state = data.get("state")
        if state not in ("online", "offline"):
            raise BadMessage("state is not online or offline")
        self.replicas[replica] = str(state)


@dataclass
class Tracked:
    """An event published (or about to be) and not yet confirmed by the hub.

    ``phase``: ``sending`` (first publish, no PUBACK yet: a failure puts it back in the
    queue), ``awaiting`` (the broker has it; stored as awaiting in the outbox) or
    ``resending`` (awaiting and published again, PUBACK pending). ``body`` is what is
    published (the same bytes every time); ``first_sent`` and ``due`` are on the forwarder's
    monotonic clock; ``step`` counts timeouts since the last hub (re)appearance.
    """

    item_id: int
    event_id: str
    alert_id: str
    phase: Literal["sending", "awaiting", "resending"]
    body: bytes = b""
    first_sent: float = 0.0
    due: float = 0.0
    step: int = 0


def result_timeout_s(step: int, initial_s: float, max_s: float) -> float:
    """How long to wait for a result after the ``step``-th publish (0 for the first):
    ``initial_s`` doubling up to ``max_s``."""
    return min(max_s, initial_s * 2.0 ** min(step, 62))
