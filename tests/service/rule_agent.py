"""An in-process agent whose source reaches nothing, so a test feeds its rules itself.

The site has two sensors, ``healthy`` and ``odd``, on a Modbus connection to a free port
where nothing listens (the source retries harmlessly and reports bad readings). The test
puts readings on the agent's queue exactly as a source does and reads what reached the
outbox (a real one, on disk).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edge_agent.config.models import SiteConfig
from edge_agent.readings import Quality, Reading
from edge_agent.service.pipeline import Agent
from tests.conftest import free_port

HEALTHY_RULE: dict[str, Any] = {
    "id": "healthy-high",
    "asset": "P-101",
    "sensor": "healthy",
    "high": {"limit": 50},
    "priority": "HIGH",
    "work_order": {"title": "{asset.name}: {value:.1f} {unit}", "due_in": "1d"},
}


def fault_site_document(
    state_dir: Path, rules: Sequence[Mapping[str, Any]], health_port: int | None = None
) -> dict[str, Any]:
    """A site with the sensors ``healthy`` and ``odd`` and ``rules``."""
    return {
        "version": 1,
        "site": {"id": "fault-plant", "name": "Fault plant"},
        "defaults": {"poll": "1s", "stale_after": "10m"},
        "connections": {
            "plc1": {
                "protocol": "modbus-tcp",
                "host": "127.0.0.1",
                "port": free_port(),  # nothing listens there
                "timeout": "200ms",
                "backoff": {"initial": "1s", "max": "5s"},
            }
        },
        "assets": {"P-101": {"maintainx_id": 1001, "name": "Pump P-101"}},
        "sensors": {
            "healthy": {
                "connection": "plc1",
                "register": {"table": "holding", "address": 0},
                "unit": "bar",
            },
            "odd": {"connection": "plc1", "register": {"table": "holding", "address": 1}},
        },
        "rules": [dict(rule) for rule in rules],
        "storage": {"path": str(state_dir)},
        "health": {"listen": f"127.0.0.1:{health_port or free_port()}"},
    }


def fault_site(state_dir: Path, rules: Sequence[Mapping[str, Any]]) -> SiteConfig:
    """:func:`fault_site_document` as a config: the model's checks only, so a value the
    validator may one day refuse still reaches the agent (its guard is what is tested)."""
    return SiteConfig.model_validate(fault_site_document(state_dir, rules))


def write_document(path: Path, document: Mapping[str, Any]) -> Path:
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def good(sensor: str, value: Any, time_ns: int | None = None) -> Reading:
    """A good reading taken now (or at ``time_ns``)."""
    return Reading(
        sensor_id=sensor,
        value=value,
        quality=Quality.GOOD,
        source_time_ns=time.time_ns() if time_ns is None else time_ns,
    )


@contextlib.asynccontextmanager
async def running_agent(config: SiteConfig, state_dir: Path) -> AsyncIterator[Agent]:
    agent = Agent(config, state_dir.parent, state_dir)
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()


async def feed(agent: Agent, readings: Sequence[Reading]) -> None:
    """Hand a batch to the rules the way a source does."""
    await agent.rules.sink(readings)


async def queued(agent: Agent) -> list[dict[str, Any]]:
    items = await asyncio.to_thread(agent.outbox.peek, 10_000)
    return [dict(item.payload) for item in items]


async def wait_queued(
    agent: Agent,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout_s: float = 10.0,
) -> list[dict[str, Any]]:
    """The outbox's alerts once ``done(alerts)`` holds; fails after ``timeout_s``, or at
    once if the rules task has ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        alerts = await queued(agent)
        if done(alerts):
            return alerts
        rules = agent._rules_task
        assert rules is not None and not rules.done(), "the rules task has ended"
        assert time.monotonic() < deadline, f"timed out; the outbox holds {alerts}"
        await asyncio.sleep(0.02)


def activations(alerts: list[dict[str, Any]], rule: str) -> list[dict[str, Any]]:
    return [a for a in alerts if a.get("rule") == rule and a.get("event") == "activated"]
