"""The texts of the alarm lifecycle that people read: the comments put on work orders
(held for maintenance, a repair verified or not) and the one-line answers to commands.

No absolute times from the engine's clock (a monotonic clock in the agent): durations
only, or times moved onto the wall clock by the caller's offset."""

from __future__ import annotations

from typing import Any

from edge_agent.alerts import format_time_ns
from edge_agent.common.time_units import NS_PER_MS, NS_PER_S
from edge_agent.common.value_text import number_text
from edge_agent.config.models import SiteConfig
from edge_agent.config.units import format_duration
from edge_agent.rules.lifecycle_state import Hold, Verification


def about(ns: int) -> str:
    """A duration as people say it: to the second from a second on (``9m59s``, ``1h2m``),
    to the millisecond below it (``14ms``, not ``14549671ns`` nor ``0s``)."""
    if ns <= 0:
        return "0s"
    if ns < NS_PER_MS:
        return "under 1ms"
    if ns < NS_PER_S:
        return f"{ns // NS_PER_MS}ms"
    seconds = ns // NS_PER_S
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


def _decimals(config: SiteConfig, sensor_id: str) -> int | None:
    sensor = config.sensors.get(sensor_id)
    return sensor.decimals if sensor is not None else None


def value_text(config: SiteConfig, sensor_id: str, value: Any) -> str:
    """``value`` with the sensor's decimals and unit: ``92.1 degC``."""
    sensor = config.sensors.get(sensor_id)
    unit = sensor.unit if sensor is not None and sensor.unit else ""
    text = number_text(value, _decimals(config, sensor_id))
    return f"{text} {unit}".strip() if text else "no value"


def asset_name(config: SiteConfig, asset_id: str) -> str:
    asset = config.assets.get(asset_id)
    return asset.name if asset is not None and asset.name else asset_id


def maintenance_comment(
    config: SiteConfig, rule_id: str, asset_id: str, sensor_id: str, value: Any, status: str
) -> str:
    """Put once on a maintenance work order per rule that it silenced."""
    return (
        f"{rule_id} on {asset_name(config, asset_id)} went into alarm ({sensor_id} "
        f"{value_text(config, sensor_id, value)}) while this work order is {status}: held "
        "as maintenance, no new work order. Further alarms of this rule during this work "
        "order are held without comment."
    )


def verified_comment(config: SiteConfig, sensor_id: str, verify_for: int, v: Verification) -> str:
    """``verified: temp normal for 30m after the repair (peak before 92 degC, range after
    61..64 degC)``."""
    low = number_text(v.low, _decimals(config, sensor_id))
    high = value_text(config, sensor_id, v.high)
    after = high if v.low == v.high else f"{low}..{high}"
    before = (
        ""
        if v.peak_before is None
        else f"peak before {value_text(config, sensor_id, v.peak_before)}, "
    )
    return (
        f"verified: {sensor_id} normal for {format_duration(verify_for)} after the repair "
        f"({before}range after {after})"
    )


def reopened_comment(
    config: SiteConfig,
    sensor_id: str,
    v: Verification,
    t: int,
    *,
    value: Any = None,
    limit: Any = None,
    stale: bool = False,
    still: bool = False,
) -> str:
    """What the sensor did after the repair that did not hold: a sample beyond the limit
    (at ``t``), still in alarm at the end of the window (``still``), or no data (``stale``)."""
    after = about(t - v.since)
    if stale:
        return (
            f"reopened: the repair could not be verified: no good reading of {sensor_id} "
            f"at the end of the {after} after the work order was done"
        )
    shown = value_text(config, sensor_id, value)
    limit_text = number_text(limit, _decimals(config, sensor_id))
    if still:
        return (
            f"reopened: {sensor_id} was still in alarm {after} after the work order was done "
            f"({shown}, limit {limit_text}); the repair did not bring it back to normal"
        )
    before = (
        ""
        if v.peak_before is None
        else f" (peak before the repair {value_text(config, sensor_id, v.peak_before)})"
    )
    return (
        f"reopened: {sensor_id} was {shown} (limit {limit_text}) {after} after the work order "
        f"was done{before}; the alarm is back"
    )


def hold_text(what: str, hold: Hold, wall_offset_ns: int) -> str:
    """``shelved by alice until 2026-01-05T12:00:00Z: pump swap``."""
    if hold.until_clear:
        until = " until the alarm clears"
    elif hold.until is not None:
        until = f" until {format_time_ns(hold.until + wall_offset_ns)}"
    else:
        until = ""
    reason = f": {hold.reason}" if hold.reason else ""
    return f"{what} by {hold.by}{until}{reason}"
