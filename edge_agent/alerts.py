"""The alert message: what the rules emit, the outbox stores and the forwarders deliver.

One JSON object per alarm event, the same on disk, on MQTT (``edge/v1/{site}/alerts``) and
at the hub. Its schema is ``edge-agent/alert@2``; fields and their bounds are documented in
``docs/alert-schema.md`` and checked by :func:`alert_problem` (the same check the hub runs,
from :mod:`edge_agent.wire.alert`). Keep this module free of I/O.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final, Literal, NotRequired, TypedDict

# Re-exported: the schema and its check live in edge_agent.wire.alert, shared with the hub.
from edge_agent.common.time_units import NS_PER_S
from edge_agent.wire.alert import ALERT_SCHEMA as ALERT_SCHEMA
from edge_agent.wire.alert import alert_problem as alert_problem

EventKind = Literal[
    "activated",
    "escalated",
    "cleared",
    "chattering",
    # @2: the alarm lifecycle (see edge_agent.rules.lifecycle)
    "shelved",
    "unshelved",
    "out_of_service",
    "returned_to_service",
    "acknowledged",
    "verified",
    "reopened",
]
HeldBy = Literal["shelved", "out_of_service", "maintenance"]
Priority = Literal["NONE", "LOW", "MEDIUM", "HIGH"]

PRIORITY_ORDER: Final[dict[str, int]] = {"NONE": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3}

# A fixed namespace so that the same (site, rule, episode number) gives the same id on every
# machine, after every restart, forever.
_ALERT_NAMESPACE: Final = uuid.UUID("6f1c2a6e-3b0e-5d7c-9a51-2d4e8f0b7c11")


class AssetRef(TypedDict):
    id: str
    name: str
    maintainx_id: int | None


class WorkOrderRequest(TypedDict):
    title: str
    description: str
    priority: Priority
    categories: list[str]
    assignees: list[dict[str, Any]]
    due_date: str | None
    location_id: NotRequired[int | None]


class AlertMessage(TypedDict):
    """One alarm event as it travels. ``event_id`` is unique per event and is the key that
    every hop deduplicates on; ``alert_id`` is shared by all events of one episode and is the
    key of the work order."""

    schema: str
    site: str
    event_id: str
    alert_id: str
    event: EventKind
    time: str
    time_ns: int
    rule: str
    sensor: str
    asset: AssetRef
    value: float | int | bool | str | None
    peak: float | int | bool | str | None
    limit: float | int | bool | str | None
    unit: str | None
    priority: Priority
    notify: bool
    work_order: WorkOrderRequest
    # The rule's work order that is still open (known from the hub's work-order messages):
    # a re-activation comments on it instead of creating another.
    related_work_order: NotRequired[int]
    # The sensor's own timestamp of its last reading (OPC UA SourceTimestamp), as reported:
    # ``time`` is the agent's clock, which the rules run on.
    source_time: NotRequired[str]
    # For the texts a person reads (comments written from the message, at the hub too): the
    # sensor's decimals and the site's time zone (IANA name), when not the defaults.
    decimals: NotRequired[int]
    timezone: NotRequired[str]
    # @2, the alarm lifecycle. ``held``: the state that made this activation or escalation
    # travel with ``notify: false``. ``by``/``reason``: a command's audit record (and an
    # ack-overdue escalation's reason). ``work_order_id``: the work order concerned (on
    # acknowledged, verified, reopened and held-for-maintenance messages); ``comment``: the
    # text to put on it. (``work_order`` is the request for a new one, so the id has its
    # own name.)
    held: NotRequired[HeldBy]
    # ``released``: on the ``activated`` that announces an episode held until now, the
    # state whose end released it (docs/rules.md, "Release").
    released: NotRequired[HeldBy]
    by: NotRequired[str]
    reason: NotRequired[str]
    work_order_id: NotRequired[int]
    comment: NotRequired[str]


def make_alert_id(site: str, rule_id: str, episode: int, lineage: str = "") -> str:
    """The stable id of one alarm episode: ``episode`` is the rule's episode number (1 for
    its first), counted and persisted with the rule state. The same inputs give the same id
    everywhere; two episodes of one rule never share one, whatever the clocks say.

    ``lineage`` names one life of the rule engine with its state folder: a random token made
    at every start and saved with the state (an open episode keeps the id it was saved
    with). Episode numbers may be behind after a restart (a lost or damaged state file, or
    saves that failed while the alerts went out); the lineage keeps the ids they give from
    meeting the old life's ids that the ledger or the hub already know. ``replay`` has none."""
    path = (
        f"{site}/{rule_id}/{lineage}/episode/{episode}"
        if lineage
        else (f"{site}/{rule_id}/episode/{episode}")
    )
    return str(uuid.uuid5(_ALERT_NAMESPACE, path))


def make_lifecycle_id(site: str, rule_id: str, key: str) -> str:
    """The id that a lifecycle event outside an episode (a rule shelved while NORMAL, a
    repair verified after its episode's id was lost) travels under: stable for the same
    ``key`` (a command id, an expiry), never an episode's id."""
    return str(uuid.uuid5(_ALERT_NAMESPACE, f"{site}/{rule_id}/lifecycle/{key}"))


def make_event_id(alert_id: str, event: str, qualifier: str = "") -> str:
    """The id of one event of an episode (``qualifier`` tells escalation levels apart)."""
    return f"{alert_id}:{event}:{qualifier}" if qualifier else f"{alert_id}:{event}"


def format_time_ns(time_ns: int) -> str:
    """RFC 3339 UTC with nanoseconds, e.g. ``2026-01-05T10:00:00.000000001Z``.

    Whole seconds are printed without a fraction (``2026-01-05T10:00:00Z``).
    """
    seconds, nanos = divmod(time_ns, NS_PER_S)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        return f"{stamp}.{nanos:09d}".rstrip("0") + "Z"
    return stamp + "Z"


def parse_time(text: str) -> int:
    """Parse an RFC 3339 time (``Z`` or an offset, up to nanoseconds) to integer ns."""
    body = text.strip()
    if body.endswith(("Z", "z")):
        body = body[:-1] + "+00:00"
    nanos = 0
    if "." in body:
        head, rest = body.split(".", 1)
        digits = ""
        for ch in rest:
            if ch.isdigit():
                digits += ch
            else:
                break
        tail = rest[len(digits) :]
        if not digits or len(digits) > 9:
            raise ValueError(f"bad fraction of a second in {text!r}")
        nanos = int(digits.ljust(9, "0"))
        body = head + tail
    parsed = datetime.fromisoformat(body)
    if parsed.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone; add Z for UTC")
    return int(parsed.timestamp()) * NS_PER_S + nanos
