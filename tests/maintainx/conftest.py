"""Fixtures for the MaintainX tests: the emulator over real HTTP on a loopback port, alert
messages as the rules emit them, and site/forwarder configuration."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.alerts import ALERT_SCHEMA, format_time_ns, make_alert_id, make_event_id
from edge_agent.config.models import MaintainX, SiteConfig
from edge_agent.config.secrets import Secret
from edge_agent.forwarders.maintainx.forwarder import MaintainXForwarder
from edge_agent.maintainx.client import MaintainXClient
from edge_agent.outbox.store import Outbox
from edge_agent.simulators.maintainx import Emulator

SITE_KEY = "site-key-0123456789abcdef"
BASE_NS = 1_780_000_000_000_000_000


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """The emulator with one single-organization key, rate limiting off."""
    with Emulator(keys={SITE_KEY: [1]}, rate_limiting=False) as mx:
        yield mx


@pytest.fixture
def asset_id(emulator: Emulator) -> int:
    return emulator.add_asset("Pump P-101")


def make_client(
    mx: Emulator, key: str = SITE_KEY, timeout_s: float = 5.0, **kw: Any
) -> MaintainXClient:
    return MaintainXClient(mx.url, Secret(key), kw.pop("organization_id", None), timeout_s, **kw)


def alert(
    n: int,
    event: str = "activated",
    *,
    asset_mx: int | None = None,
    notify: bool = True,
    priority: str = "MEDIUM",
    qualifier: str = "",
    title: str | None = None,
    site: str = "plant-a",
) -> dict[str, Any]:
    """An alert message for episode ``n`` (same ``n``: same alert id)."""
    start_ns = BASE_NS + n * 1_000_000_000
    time_ns = (
        start_ns
        + {"activated": 0, "escalated": 60, "cleared": 120, "chattering": 90}[event] * 1_000_000_000
    )
    alert_id = make_alert_id(site, "p101-temp-high", start_ns)
    return {
        "schema": ALERT_SCHEMA,
        "site": site,
        "event_id": make_event_id(alert_id, event, qualifier),
        "alert_id": alert_id,
        "event": event,
        "time": format_time_ns(time_ns),
        "time_ns": time_ns,
        "rule": "p101-temp-high",
        "sensor": "p101-temp",
        "asset": {"id": "p101", "name": "Pump P-101", "maintainx_id": asset_mx},
        "value": 93.5,
        "peak": 97.0,
        "limit": 90.0,
        "unit": "degC",
        "priority": priority,
        "notify": notify,
        "work_order": {
            "title": title or "P-101 bearing temperature high",
            "description": "Bearing temperature above 90 degC.",
            "priority": priority,
            "categories": ["Monitoring"],
            "assignees": [{"type": "TEAM", "id": 7}],
            "due_date": "2026-06-01T12:00:00Z",
        },
    }


def site_dict(
    key_ref: str,
    *,
    base_url: str,
    timeout: str = "2s",
    backoff: str = "10ms",
    backoff_max: str = "100ms",
    rate_limit: int = 100000,
) -> dict[str, Any]:
    """A site file (as data) forwarding straight to MaintainX at ``base_url``."""
    return {
        "version": 1,
        "site": {"id": "plant-a"},
        "assets": {"p101": {"name": "Pump P-101"}},
        "forwarding": {
            "mode": "maintainx",
            "maintainx": {
                "base_url": base_url,
                "api_key": key_ref,
                "timeout": timeout,
                "rate_limit": rate_limit,
                "backoff": {"initial": backoff, "max": backoff_max},
            },
        },
    }


def site_config(key_ref: str, **kw: Any) -> tuple[SiteConfig, MaintainX]:
    config = SiteConfig.model_validate(site_dict(key_ref, **kw))
    assert config.forwarding is not None and config.forwarding.maintainx is not None
    return config, config.forwarding.maintainx


def write_key(base_dir: Path, key: str, name: str = "mx.key") -> str:
    (base_dir / name).write_text(key + "\n")
    return f"file:{name}"


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.01)


async def stop(forwarder: MaintainXForwarder, task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await forwarder.close()


Start = Callable[..., MaintainXForwarder]


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox.open(tmp_path / "outbox", max_bytes=50_000_000, lease_s=30.0)
    yield box
    box.close()


@pytest.fixture
async def start(tmp_path: Path, outbox: Outbox) -> AsyncIterator[Start]:
    """Start a forwarder task against ``base_url``; everything is stopped at the end."""
    running: list[tuple[MaintainXForwarder, asyncio.Task[None]]] = []

    def _start(
        base_url: str, key: str = SITE_KEY, box: Outbox | None = None, **cfg: Any
    ) -> MaintainXForwarder:
        site, mx_config = site_config(write_key(tmp_path, key), base_url=base_url, **cfg)
        forwarder = MaintainXForwarder(
            mx_config, site, box or outbox, tmp_path / "state", tmp_path, idle_s=0.02
        )
        running.append((forwarder, asyncio.create_task(forwarder.run(), name="forwarder")))
        return forwarder

    yield _start
    for forwarder, task in running:
        await stop(forwarder, task)
