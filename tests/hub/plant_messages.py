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
