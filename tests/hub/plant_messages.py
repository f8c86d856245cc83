"""Plant data messages for the hub's tests (meter-reading@1, asset-status@1), as the agent's
plant-data outbox holds them."""

from __future__ import annotations

from typing import Any

from edge_agent.alerts import format_time_ns
from edge_agent.wire.plant import (
    AssetRef,
    AssetStatusMessage,
    MeterReadingMessage,
    MeterSpec,
    PmSpec,
    asset_status_id,
    meter_reading_id,
)


def run_hours_spec(name: str = "P-101 run hours") -> MeterSpec:
    return MeterSpec(name, "Hours", "run_hours", pm=PmSpec(500.0, "P-101 500 h service"))


def reading(
    site: str,
    meter: str,
    n: int,
    *,
    time_ns: int,
    asset_mx: int | None,
    value: float | None = None,
    spec: MeterSpec | None = None,
    meter_id: int | None = None,
) -> dict[str, Any]:
    """Reading ``n`` of ``meter`` (``n`` hours run unless ``value``), ``n`` seconds after
    ``time_ns``."""
    at = time_ns + n * 1_000_000_000
    return MeterReadingMessage(
        site=site,
        id=meter_reading_id(site, meter, at),
        meter=meter,
        asset=AssetRef("P-101", "Feed pump", asset_mx),
        maintainx_meter_id=meter_id,
        meter_spec=spec or run_hours_spec(),
        value=float(n) if value is None else value,
        time=format_time_ns(at),
        time_ns=at,
        kind="run_hours",
    ).to_json()


def status(
    site: str, status_name: str, at_ns: int, *, asset_mx: int | None, asset: str = "P-101"
) -> dict[str, Any]:
    return AssetStatusMessage(
        site=site,
        id=asset_status_id(site, asset, status_name, at_ns),
        asset=AssetRef(asset, "Feed pump", asset_mx),
        status=status_name,  # type: ignore[arg-type]
        downtime_type="UNPLANNED" if status_name == "OFFLINE" else None,
        started_at=format_time_ns(at_ns),
        time_ns=at_ns,
    ).to_json()


async def until_answered(
    site: Any, topic: str, message: dict[str, Any], timeout_s: float = 20
) -> None:
    """Publish ``message`` until the hub's result for it arrives, as the agent's resend does
    (a hub that just connected may not have its subscriptions granted yet)."""
    import asyncio
    import time

    def answers() -> int:
        return sum(r.get("event_id") == message["id"] for r in site.on("/results/plant"))

    before = answers()  # a message answered before (a hub restarted) is answered again
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        site.publish(topic, message)
        for _ in range(50):
            if answers() > before:
                return
            await asyncio.sleep(0.02)
    raise AssertionError(f"no result for {message['id']} within {timeout_s} s")
