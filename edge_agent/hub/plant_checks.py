"""One plant data message as the hub takes it in: its topic, its size, its JSON, its schema
(``wire/plant.py``) and its site. Pure: no I/O. A refusal says why, and the message's id when
it has one an agent could match (so that it is answered ``rejected`` and dead-lettered there
instead of resent for ever)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final, Literal

from edge_agent.wire.alert import MAX_ID_CHARS, SITE_PATTERN
from edge_agent.wire.plant import (
    AssetStatusMessage,
    MeterReadingMessage,
    PlantMessageError,
    check_asset_status,
    check_meter_reading,
)

PlantKind = Literal["meters", "assets"]
PlantMessage = MeterReadingMessage | AssetStatusMessage
_SITE_RE: Final = re.compile(SITE_PATTERN)


@dataclass(frozen=True)
class Refusal:
    """A message refused before anything was applied."""

    reason: str
    """``too_large``, ``not_json``, ``unknown_site``, ``invalid``, ``wrong_site``."""
    detail: str
    message_id: str | None = None


def parse_plant_topic(prefix: str, topic: str) -> tuple[str, PlantKind] | None:
    """``edge/v1/plant-a/meters`` → (``plant-a``, ``meters``); None if not a plant topic."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    rest = topic[len(head) :].split("/")
    if len(rest) != 2 or not _SITE_RE.match(rest[0]):
        return None
    if rest[1] == "meters":
        return rest[0], "meters"
    if rest[1] == "assets":
        return rest[0], "assets"
    return None


def check_plant(
    site_id: str, kind: PlantKind, payload: bytes, *, known: frozenset[str], max_bytes: int
) -> PlantMessage | Refusal:
    """The checked message from ``{prefix}/{site_id}/{kind}``, or why not."""
    if len(payload) > max_bytes:
        return Refusal("too_large", f"{len(payload)} bytes, more than {max_bytes}")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return Refusal("not_json", f"not JSON: {type(exc).__name__}")
    given = data.get("id") if isinstance(data, dict) else None
    message_id = given if isinstance(given, str) and 0 < len(given) <= MAX_ID_CHARS else None
    if site_id not in known:
        return Refusal("unknown_site", "this hub does not serve this site", message_id)
    try:
        message: PlantMessage = (
            check_meter_reading(data) if kind == "meters" else check_asset_status(data)
        )
    except PlantMessageError as exc:
        return Refusal("invalid", str(exc), message_id)
    if message.site != site_id:
        return Refusal("wrong_site", "the message names another site", message_id)
    return message
