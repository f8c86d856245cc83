"""How a plant data message is named in the hub's results, for the agent and the hub alike.
Pure: no I/O.

A result (:mod:`edge_agent.wire.result`) names an ``event_id`` and an ``alert_id``; for plant
data these are the message's ``id`` and its *order key*: a meter reading is its own (readings
travel side by side, MaintainX orders them by date), an asset's status changes share one per
asset (the agent sends the next only after the hub confirmed the previous: MaintainX ends a
status when the next starts, so they must arrive in order).
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from edge_agent.wire.alert import MAX_ID_CHARS
from edge_agent.wire.plant import ASSET_STATUS_SCHEMA, METER_READING_SCHEMA

PLANT_SCHEMAS: Final = (METER_READING_SCHEMA, ASSET_STATUS_SCHEMA)


def asset_order_key(site: str, asset_id: str) -> str:
    """The order key of an asset's status changes (hashed when it would not fit a result)."""
    key = f"{site}/asset/{asset_id}"
    if len(key) <= MAX_ID_CHARS:
        return key
    return f"{site}/asset#{hashlib.sha256(asset_id.encode()).hexdigest()}"


def plant_ids(payload: Any) -> tuple[str, str] | None:
    """(id, order key) of a plant data payload as stored and sent; None when it names no
    usable id (the hub could never confirm it)."""
    if not isinstance(payload, dict):
        return None
    message_id = payload.get("id")
    if not isinstance(message_id, str) or not message_id or len(message_id) > MAX_ID_CHARS:
        return None
    schema = payload.get("schema")
    if schema == METER_READING_SCHEMA:
        return message_id, message_id
    if schema == ASSET_STATUS_SCHEMA:
        asset = payload.get("asset")
        site = payload.get("site")
        asset_id = asset.get("id") if isinstance(asset, dict) else None
        if not isinstance(asset_id, str) or not isinstance(site, str):
            return None
        return message_id, asset_order_key(site, asset_id)
    return None
