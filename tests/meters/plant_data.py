"""Plant data messages (``wire/plant.py``) as the meters stage makes them, and a plant-data
forwarder on a real outbox against the MaintainX emulator, for the meters tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal

from edge_agent.alerts import format_time_ns
from edge_agent.config.models import SiteConfig
from edge_agent.forwarders.maintainx.plant import PlantForwarder
from edge_agent.outbox.store import Outbox
from edge_agent.wire.plant import (
    AssetRef,
    AssetStatusMessage,
    MeterReadingMessage,
    MeterSpec,
    PmSpec,
    asset_status_id,
    meter_reading_id,
)

SITE = "plant-a"
SECOND = 1_000_000_000
HOUR = 3600 * SECOND
DAY = 24 * HOUR
KEY = "site-key-0123456789abcdef"


def reading(
    meter: str,
    value: float,
    time_ns: int,
    *,
    kind: Literal["gauge", "counter", "run_hours", "starts"] = "counter",
    asset_mx: int | None = None,
    meter_id: int | None = None,
    pm: PmSpec | None = None,
    above: float | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    spec = MeterSpec(name or meter, "Cycles" if kind != "gauge" else "degC", kind, pm, above)
    return MeterReadingMessage(
        site=SITE,
        id=meter_reading_id(SITE, meter, time_ns),
        meter=meter,
        asset=AssetRef("P-101", "Pump P-101", asset_mx),
        maintainx_meter_id=meter_id,
        meter_spec=spec,
        value=value,
        time=format_time_ns(time_ns),
        time_ns=time_ns,
        kind=kind,
    ).to_json()


def status(
    running: bool, time_ns: int, *, asset_mx: int | None, planned: bool = False
) -> dict[str, Any]:
    state: Literal["ONLINE", "OFFLINE"] = "ONLINE" if running else "OFFLINE"
    downtime: Literal["PLANNED", "UNPLANNED"] | None = None
    if not running:
        downtime = "PLANNED" if planned else "UNPLANNED"
    return AssetStatusMessage(
        site=SITE,
        id=asset_status_id(SITE, "P-101", state, time_ns),
        asset=AssetRef("P-101", "Pump P-101", asset_mx),
        status=state,
        downtime_type=downtime,
        started_at=format_time_ns(time_ns),
        time_ns=time_ns,
    ).to_json()


def site(tmp_path: Path, base_url: str, *, timeout: str = "2s") -> SiteConfig:
    (tmp_path / "mx.key").write_text(KEY + "\n")
    return SiteConfig.model_validate(
        {
            "version": 1,
            "site": {"id": SITE},
            "assets": {"P-101": {"name": "Pump P-101"}},
            "forwarding": {
                "mode": "maintainx",
                "maintainx": {
                    "base_url": base_url,
                    "api_key": "file:mx.key",
                    "timeout": timeout,
                    "rate_limit": 100000,
                    "backoff": {"initial": "5ms", "max": "50ms"},
                },
            },
        }
    )


@contextlib.asynccontextmanager
async def running_forwarder(
    tmp_path: Path,
    outbox: Outbox,
    base_url: str,
    *,
    timeout: str = "2s",
    now_ns: Callable[[], int] = time.time_ns,
) -> AsyncIterator[PlantForwarder]:
    config = site(tmp_path, base_url, timeout=timeout)
    assert config.forwarding is not None and config.forwarding.maintainx is not None
    forwarder = PlantForwarder(
        config.forwarding.maintainx,
        config,
        outbox,
        tmp_path / "state",
        tmp_path,
        idle_s=0.02,
        now_ns=now_ns,
    )
    (tmp_path / "state").mkdir(exist_ok=True)
    task = asyncio.create_task(forwarder.run())
    try:
        yield forwarder
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await forwarder.close()


async def drained(outbox: Outbox, timeout_s: float = 60.0) -> None:
    """Wait (bounded) until the outbox holds nothing."""
    deadline = time.monotonic() + timeout_s
    while outbox.stats().depth:
        assert time.monotonic() < deadline, f"outbox not drained: {outbox.stats().depth} left"
        await asyncio.sleep(0.02)
