"""Shared helpers for the rule tests: a small site built in code, readings by seconds."""

from __future__ import annotations

from typing import Any

from edge_agent.alerts import parse_time
from edge_agent.config.models import SiteConfig
from edge_agent.readings import Quality, Reading

BASE_NS = parse_time("2026-01-05T10:00:00Z")
SECOND = 1_000_000_000


def site(rules: list[dict[str, Any]], **defaults: Any) -> SiteConfig:
    """A site with sensors ``temp``, ``level``, ``flow``, ``running`` and the given rules."""
    register = 0

    def sensor(**extra: Any) -> dict[str, Any]:
        nonlocal register
        register += 1
        return {"connection": "plc", "register": {"table": "holding", "address": register}, **extra}

    return SiteConfig.model_validate(
        {
            "version": 1,
            "site": {"id": "plant-a", "name": "Plant A"},
            "defaults": {"stale_after": "10m", **defaults},
            "connections": {"plc": {"protocol": "modbus-tcp", "host": "127.0.0.1"}},
            "assets": {"p101": {"name": "Pump 101"}},
            "sensors": {
                "temp": sensor(unit="degC"),
                "level": sensor(unit="%"),
                "flow": sensor(unit="m3/h", stale_after="8s"),
                "running": {"connection": "plc", "register": {"table": "coil", "address": 0}},
            },
            "rules": rules,
        }
    )


def reading(
    seconds: float, value: Any, sensor: str = "temp", quality: Quality = Quality.GOOD
) -> Reading:
    return Reading(sensor, value, quality, BASE_NS + round(seconds * SECOND))
