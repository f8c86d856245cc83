"""``POST /assets/{assetId}/status``: an asset's downtime, as MaintainX records it.

The body is ``{status: ONLINE|OFFLINE|IGNORE, downtimeType?: PLANNED|UNPLANNED, startedAt,
endedAt?, description?}`` (the API page beside the spec; the spec's subset has the status
object itself, under ``GET /assets/{id}``'s ``asset.status``). Each change is a new status
row: the one before it ends when the new one starts, unless it had an end already.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from edge_agent.simulators.maintainx_emulator.errors import validation_error

ASSET_STATUSES: Final = ("IGNORE", "OFFLINE", "ONLINE")
DOWNTIME_TYPES: Final = ("PLANNED", "UNPLANNED")
STATUS_FIELDS: Final = frozenset(["status", "downtimeType", "startedAt", "endedAt", "description"])


def _date(body: dict[str, Any], name: str, parse: Callable[[str], datetime]) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        parse(value)
    except ValueError:
        raise validation_error(f"{name} must be an ISO 8601 date-time", name, value) from None
    return value


def checked_status(body: Any, parse: Callable[[str], datetime]) -> dict[str, Any]:
    """The status change a request asks for (raises the 400 for a bad one)."""
    if not isinstance(body, dict):
        raise validation_error("Body must be a JSON object")
    unknown = sorted(set(body) - STATUS_FIELDS)
    if unknown:
        raise validation_error(f"Unknown field: {unknown[0]}", unknown[0])
    status = body.get("status")
    if status not in ASSET_STATUSES:
        raise validation_error(
            f"status must be one of {', '.join(ASSET_STATUSES)}", "status", status
        )
    downtime = body.get("downtimeType")
    if downtime is not None and downtime not in DOWNTIME_TYPES:
        raise validation_error(
            f"downtimeType must be one of {', '.join(DOWNTIME_TYPES)}", "downtimeType", downtime
        )
    started = _date(body, "startedAt", parse)
    if started is None:
        raise validation_error("startedAt is required", "startedAt")
    ended = _date(body, "endedAt", parse)
    if ended is not None and parse(ended) < parse(started):
        raise validation_error("endedAt must not be before startedAt", "endedAt", ended)
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise validation_error("description must be a string", "description")
    return {
        "status": status,
        "downtimeType": downtime,
        "startedAt": started,
        "endedAt": ended,
        "description": description,
    }
