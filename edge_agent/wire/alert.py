"""The alert message's schema (``edge-agent/alert@2``; ``@1`` is still read) with its
bounds, in one place: the agent checks what it writes against it and the hub checks what it
reads. Documented field by
field in ``docs/alert-schema.md``. Pure: no I/O, no clock.

Why bounds and not only types: every value here reaches a database column (SQLite and
PostgreSQL integers are 64-bit), a JSON body for MaintainX and a log line. A time in the
year 2300 or an id of 10**30 is well-formed JSON and still cannot be stored; checking it here,
before anything is written, turns it into a rejection instead of a crash.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

from edge_agent.common.time_units import NS_PER_S
from edge_agent.errors import EdgeAgentError

ALERT_SCHEMA_VERSION: Final = 2
ALERT_SCHEMA: Final = f"edge-agent/alert@{ALERT_SCHEMA_VERSION}"
"""What this release writes."""
ACCEPTED_ALERT_SCHEMAS: Final = frozenset(
    f"edge-agent/alert@{version}"
    for version in range(max(1, ALERT_SCHEMA_VERSION - 1), ALERT_SCHEMA_VERSION + 1)
)
"""What this release reads: the current schema and the one before, so that sites still on
the previous release keep working while the hub is upgraded first (docs/operations.md,
"Upgrade"). A change of the schema adds its reading of the previous one here."""
_SCHEMA_RE: Final = re.compile(r"edge-agent/alert@(\d{1,6})")
EVENTS_V1: Final = frozenset({"activated", "escalated", "cleared", "chattering"})
LifecycleEvent = Literal[
    "shelved",
    "unshelved",
    "out_of_service",
    "returned_to_service",
    "acknowledged",
    "verified",
    "reopened",
]
"""The alarm lifecycle's events (@2), named once: the agent's event kinds, the message's
``event`` and the hub's records take them from here."""
LIFECYCLE_EVENTS: Final = frozenset(get_args(LifecycleEvent))
"""@2: the alarm lifecycle's audit events and a repair's verdict (docs/alert-schema.md)."""
EVENTS: Final = EVENTS_V1 | LIFECYCLE_EVENTS
HELD_STATES: Final = frozenset({"shelved", "out_of_service", "maintenance"})
"""@2 ``held``: the lifecycle state that made an activation travel with ``notify: false``."""
MAX_BY_CHARS: Final = 200
MAX_REASON_CHARS: Final = 1000
MAX_COMMENT_CHARS: Final = 20_000
PRIORITIES: Final = ("NONE", "LOW", "MEDIUM", "HIGH")
ASSIGNEE_TYPES: Final = frozenset({"USER", "TEAM"})
SITE_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{0,62}$"

INT64_MAX: Final = 2**63 - 1
MAX_ID_CHARS: Final = 256
"""event_id, alert_id, rule, sensor, asset id and name."""
MAX_TITLE_CHARS: Final = 1000
MAX_DESCRIPTION_CHARS: Final = 20_000
MAX_VALUE_CHARS: Final = 256
"""A text value, peak, limit or unit."""
MAX_TIME_CHARS: Final = 64
MAX_LIST_ITEMS: Final = 50
MAX_CATEGORY_CHARS: Final = 200
MAX_DECIMALS: Final = 10  # as the site file's sensor decimals
MAX_ZONE_CHARS: Final = 64
EARLIEST_NS: Final = 946_684_800 * NS_PER_S
"""2000-01-01T00:00:00Z: no alarm of this system is older."""
LATEST_NS: Final = 4_102_444_800 * NS_PER_S
"""2100-01-01T00:00:00Z. A fixed window, not one around the reader's clock: a site whose
clock is off by a day must still get its alarm through; the window only keeps out values
no store can hold (nanoseconds after 2262 overflow 64 bits) and obvious garbage."""

_SITE_RE: Final = re.compile(SITE_PATTERN)
# An IANA zone name's shape (Area/Location, Etc/GMT+5, UTC); the zone itself is looked up
# only where a text is written, and an unknown one falls back to UTC there.
_ZONE_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}")
_TIME_RE: Final = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$"
)


class WireError(EdgeAgentError, ValueError):
    """A value that is not what the schema allows (the message says which and why)."""


def wire_time_ns(text: object, field: str = "time") -> int:
    """An RFC 3339 time with a zone (``Z`` or an offset, up to nanoseconds) within
    [2000, 2100) as integer nanoseconds; :class:`WireError` otherwise."""
    if not isinstance(text, str) or len(text) > MAX_TIME_CHARS:
        raise WireError(f"{field}: an RFC 3339 time of at most {MAX_TIME_CHARS} characters")
    match = _TIME_RE.match(text)
    if match is None:
        raise WireError(f"{field}: not an RFC 3339 time with a zone, e.g. 2026-01-05T10:00:00Z")
    stamp, fraction, zone = match.groups()
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        parsed = datetime.fromisoformat(stamp + zone)
    except ValueError as exc:
        raise WireError(f"{field}: {exc}") from exc
    seconds = int((parsed - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    value = seconds * NS_PER_S + int((fraction or "0").ljust(9, "0"))
    if not EARLIEST_NS <= value < LATEST_NS:
        raise WireError(f"{field}: outside 2000-01-01..2100-01-01")
    return value


def is_wire_id(value: object) -> bool:
    """A positive 64-bit integer (a MaintainX id), not a bool."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= INT64_MAX


def schema_problem(schema: object) -> str | None:
    """Why a message's ``schema`` is not one this release reads, or None when it is. A later
    release's schema says so: its site was upgraded before the hub."""
    if schema in ACCEPTED_ALERT_SCHEMAS:
        return None
    accepted = " or ".join(sorted(ACCEPTED_ALERT_SCHEMAS))
    if isinstance(schema, str):
        match = _SCHEMA_RE.fullmatch(schema)
        if match is not None and int(match[1]) > ALERT_SCHEMA_VERSION:
            return (
                f"schema {schema!r} is a later release's; this one reads {accepted}: "
                "upgrade the hub before its sites"
            )
    shown = schema if isinstance(schema, str) else type(schema).__name__
    return f"schema {str(shown)[:64]!r}, expected {accepted}"


def alert_problem(data: dict[str, Any], *, texts_storable: bool = False) -> str | None:
    """The first field of an alert message that breaks the schema, or None when it is
    valid. Never raises (a check that raised would itself be a poison message).
    ``texts_storable``: the caller knows that no text in ``data`` holds a NUL or a lone
    surrogate (see :func:`json_texts_storable`), and the walk over every text is skipped."""
    try:
        return (None if texts_storable else _unstorable_text(data)) or _problem(data)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        return f"unreadable message: {type(exc).__name__}"


def json_texts_storable(payload: bytes) -> bool:
    """True when no text that ``json.loads(payload.decode("utf-8"))`` returns can hold a NUL
    or a lone surrogate: strict UTF-8 decoding refuses encoded surrogates, the strict JSON
    parser refuses raw control characters in strings, so only a ``\\u`` escape can make
    either. False (check every text) whenever the payload has one."""
    return b"\\u" not in payload


def _unstorable_text(value: Any, where: str = "") -> str | None:
    """A text anywhere in the message that no store can hold: a NUL character (PostgreSQL
    refuses it) or a lone surrogate (not UTF-8 at all)."""
    if isinstance(value, str):
        if "\x00" in value:
            return f"{where or 'a key'}: NUL characters are not allowed"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{where or 'a key'}: text that is not valid Unicode"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            name = ascii(str(key))[1:-1][:64]  # the reason must itself be storable
            path = f"{where}.{name}" if where else name
            problem = _unstorable_text(key, path) or _unstorable_text(item, path)
            if problem:
                return problem
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problem = _unstorable_text(item, f"{where}[{index}]")
            if problem:
                return problem
    return None


def _text(data: dict[str, Any], key: str, limit: int, *, prefix: str = "") -> str | None:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        return f"{prefix}{key}: a text of 1..{limit} characters is required"
    return None


def _scalar(value: object) -> bool:
    """A reading's value as JSON carries it: bounded number, short text, bool or null."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -INT64_MAX - 1 <= value <= INT64_MAX
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= MAX_VALUE_CHARS


def _problem(data: dict[str, Any]) -> str | None:
    if data.get("schema") not in ACCEPTED_ALERT_SCHEMAS:
        return f"schema: {' or '.join(sorted(ACCEPTED_ALERT_SCHEMAS))} is required"
    site = data.get("site")
    if not isinstance(site, str) or not _SITE_RE.match(site):
        return "site: a site id ([a-z0-9][a-z0-9-]{0,62}) is required"
    for key in ("event_id", "alert_id", "rule", "sensor"):
        problem = _text(data, key, MAX_ID_CHARS)
        if problem:
            return problem
    # An @1 message has only @1's events; @2 adds the lifecycle's.
    events = EVENTS_V1 if data.get("schema") == "edge-agent/alert@1" else EVENTS
    if data.get("event") not in events:
        return f"event: one of {', '.join(sorted(events))} is required"
    if data.get("priority") not in PRIORITIES:
        return f"priority: one of {', '.join(PRIORITIES)} is required"
    try:
        wire_time_ns(data.get("time"))
    except WireError as exc:
        return str(exc)
    time_ns = data.get("time_ns")
    if not isinstance(time_ns, int) or isinstance(time_ns, bool) or not 0 <= time_ns <= INT64_MAX:
        return "time_ns: an integer in 0..2**63-1 is required"
    for key in ("value", "peak", "limit"):
        if not _scalar(data.get(key)):
            return (
                f"{key}: a finite 64-bit number, a text of <= {MAX_VALUE_CHARS}, true/false or null"
            )
    unit = data.get("unit")
    if unit is not None and (not isinstance(unit, str) or len(unit) > MAX_VALUE_CHARS):
        return f"unit: a text of <= {MAX_VALUE_CHARS} characters or null is required"
    if not isinstance(data.get("notify", True), bool):
        return "notify: true or false is required"
    problem = _asset_problem(data.get("asset"))
    if problem:
        return problem
    problem = _work_order_problem(data.get("work_order"))
    if problem:
        return problem
    source_time = data.get("source_time")
    if source_time is not None and (not isinstance(source_time, str) or len(source_time) > 64):
        # Reported, never trusted (a device's clock may be anything): a short text, unparsed.
        return f"source_time: a text of <= {MAX_TIME_CHARS} characters is required"
    decimals = data.get("decimals")
    if decimals is not None and (type(decimals) is not int or not 0 <= decimals <= MAX_DECIMALS):
        return f"decimals: an integer in 0..{MAX_DECIMALS} is required"
    zone = data.get("timezone")
    if zone is not None and (
        not isinstance(zone, str) or len(zone) > MAX_ZONE_CHARS or not _ZONE_RE.fullmatch(zone)
    ):
        return "timezone: an IANA time zone name (e.g. Europe/Berlin) is required"
    related = data.get("related_work_order")

    if related is not None and not is_wire_id(related):
        return "related_work_order: an id in 1..2**63-1 is required"
    return _lifecycle_problem(data)


def _lifecycle_problem(data: dict[str, Any]) -> str | None:
    """@2's optional fields: ``held``, ``released``, ``by``, ``reason``, ``work_order_id``,
    ``comment``."""
    held = data.get("held")
    if held is not None:
        if held not in HELD_STATES:
            return f"held: one of {', '.join(sorted(HELD_STATES))} or absent is required"
        if data.get("notify", True) is not False:
            return "held: a held message has notify: false"
    released = data.get("released")
    if released is not None:
        # The announcement of an episode held until then: an activation, held no more.
        if released not in HELD_STATES:
            return f"released: one of {', '.join(sorted(HELD_STATES))} or absent is required"
        if data.get("event") != "activated" or held is not None:
            return "released: only on an activated message that is not held"
    for key, limit in (("by", MAX_BY_CHARS), ("reason", MAX_REASON_CHARS)):
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            return f"{key}: a text of <= {limit} characters is required"
    comment = data.get("comment")
    if comment is not None and (
        not isinstance(comment, str) or not comment or len(comment) > MAX_COMMENT_CHARS
    ):
        return f"comment: a text of 1..{MAX_COMMENT_CHARS} characters is required"
    work_order_id = data.get("work_order_id")
    if work_order_id is not None and not is_wire_id(work_order_id):
        return "work_order_id: an id in 1..2**63-1 is required"
    if data.get("event") in ("verified", "reopened") and work_order_id is None:
        return f"work_order_id: a {data.get('event')} message names its work order"
    return None


def _asset_problem(asset: object) -> str | None:
    if not isinstance(asset, dict):
        return "asset: an object with an id is required"
    problem = _text(asset, "id", MAX_ID_CHARS, prefix="asset.")
    if problem:
        return problem
    name = asset.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_ID_CHARS:
        return f"asset.name: a text of <= {MAX_ID_CHARS} characters is required"
    mx_id = asset.get("maintainx_id")
    if mx_id is not None and not is_wire_id(mx_id):
        return "asset.maintainx_id: an id in 1..2**63-1 or null is required"
    return None


def _work_order_problem(request: object) -> str | None:
    if not isinstance(request, dict):
        return "work_order: an object with a title is required"
    problem = _text(request, "title", MAX_TITLE_CHARS, prefix="work_order.")
    if problem:
        return problem
    description = request.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS:
        return f"work_order.description: a text of <= {MAX_DESCRIPTION_CHARS} characters"
    if request.get("priority", "NONE") not in PRIORITIES:
        return f"work_order.priority: one of {', '.join(PRIORITIES)} is required"
    categories = request.get("categories", [])
    if not isinstance(categories, list) or len(categories) > MAX_LIST_ITEMS:
        return f"work_order.categories: a list of <= {MAX_LIST_ITEMS} texts is required"
    for index, category in enumerate(categories):
        if not isinstance(category, str) or not category or len(category) > MAX_CATEGORY_CHARS:
            return f"work_order.categories[{index}]: a text of 1..{MAX_CATEGORY_CHARS} characters"
    assignees = request.get("assignees", [])
    if not isinstance(assignees, list) or len(assignees) > MAX_LIST_ITEMS:
        return f"work_order.assignees: a list of <= {MAX_LIST_ITEMS} objects is required"
    for index, assignee in enumerate(assignees):
        if (
            not isinstance(assignee, dict)
            or assignee.get("type") not in ASSIGNEE_TYPES
            or not is_wire_id(assignee.get("id"))
            or len(assignee) != 2
        ):
            return (
                f"work_order.assignees[{index}]: an object "
                '{"type": "USER" or "TEAM", "id": 1..2**63-1} is required'
            )
    due = request.get("due_date")
    if due is not None:
        try:
            wire_time_ns(due, "work_order.due_date")
        except WireError as exc:
            return str(exc)
    location = request.get("location_id")
    if location is not None and not is_wire_id(location):
        return "work_order.location_id: an id in 1..2**63-1 or null is required"
    return None
