"""The webhooks of plant data, as the emulator sends them (issue 14): an asset's status
changed (``ASSET_STATUS_CHANGE``), a meter trigger's state changed
(``METER_TRIGGER_STATE_CHANGE``), and the limit on manual meters' readings.

MaintainX's payloads are flat with no event-type field (the API page); the emulator's follow
the work order status change's pattern:

- ``ASSET_STATUS_CHANGE``: ``{assetId, orgId, oldStatus, newStatus, downtimeType,
  occurredAt}`` (``oldStatus`` null for an asset's first status; ``occurredAt`` the new
  status's ``startedAt``);
- ``METER_TRIGGER_STATE_CHANGE``: ``{meterTriggerId, meterId, orgId, oldState, newState,
  occurredAt}`` (``INSUFFICIENT_DATA`` → ``STABLE`` at the first reading, ``STABLE`` ↔
  ``TRIGGERED`` as readings cross it).

Manual meters: "limited to 10 distinct readings creation requests per 24 hours over REST API;
batched readings requests only count as one" (the spec's ``measurementType``): a
``POST /meterreadings`` with a reading of a ``MANUAL`` meter takes one from that key's
:data:`MANUAL_READINGS_LIMIT` per :data:`MANUAL_READINGS_WINDOW_S`, apart from the automated
meters' bucket; over it, 429.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, Final

ASSET_STATUS_CHANGE: Final = "ASSET_STATUS_CHANGE"
METER_TRIGGER_STATE_CHANGE: Final = "METER_TRIGGER_STATE_CHANGE"
MANUAL_READINGS_LIMIT: Final = 10
MANUAL_READINGS_WINDOW_S: Final = 24 * 3600.0


def subscribed(subscriptions: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Copies of the subscriptions of type ``kind``."""
    return [copy.deepcopy(s) for s in subscriptions if s.get("type") == kind]


def asset_status_payload(
    org_id: int, asset_id: int, before: dict[str, Any] | None, after: dict[str, Any]
) -> dict[str, Any]:
    return {
        "assetId": asset_id,
        "orgId": org_id,
        "oldStatus": None if before is None else before.get("status"),
        "newStatus": after["status"],
        "downtimeType": after.get("downtimeType"),
        "occurredAt": after["startedAt"],
    }


def trigger_state_payload(
    org_id: int, trigger: dict[str, Any], old_state: str, occurred_at: str
) -> dict[str, Any]:
    return {
        "meterTriggerId": trigger["id"],
        "meterId": trigger["meterId"],
        "orgId": org_id,
        "oldState": old_state,
        "newState": trigger["state"],
        "occurredAt": occurred_at,
    }
