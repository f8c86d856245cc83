"""Sensor ids made from names people gave (a spreadsheet's tag name, an OPC UA browse path):
valid for the site file (``NAME_PATTERN``), the same every time for the same input."""

from __future__ import annotations

import hashlib
import re
from typing import Final

MAX_ID_CHARS: Final = 128
_JUNK: Final = re.compile(r"[^a-z0-9_]+")


def sensor_id(name: str) -> str:
    """``Pump 1 / Bearing Temp (°C)`` → ``pump_1_bearing_temp_c``; ``""`` when nothing is
    left. A name that starts with a digit gets ``s_`` (ids start with a letter by habit)."""
    text = _JUNK.sub("_", name.strip().lower()).strip("_")
    text = f"s_{text}" if text[:1].isdigit() else text
    return text if len(text) <= MAX_ID_CHARS else _with_hash(text, name)


def unique_id(name: str, salt: str, taken: set[str]) -> str:
    """:func:`sensor_id`, with a short hash of ``salt`` (e.g. the node id) when another
    name already made that id: stable as long as the inputs are."""
    key = sensor_id(name) or "sensor"
    if key in taken:
        key = _with_hash(key, salt)
    taken.add(key)
    return key


def _with_hash(text: str, salt: str) -> str:
    digest = hashlib.sha1(salt.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{text[: MAX_ID_CHARS - 9]}_{digest}"
