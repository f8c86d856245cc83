"""``edge-agent history SITE.yaml SENSOR [--since 2h] [--csv]``: what a sensor did lately.

Read from the agent's history file (``history:`` in the site file) while the agent runs.
On a terminal: a chart of the values over time with the limits of the rules on that sensor
drawn in; ``--csv`` (or output to a file or a pipe) gives ``time,value,quality`` rows.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from edge_agent.config.models import SiteConfig
    from edge_agent.history.store import Row

CHART_WIDTH: Final = 72
CHART_HEIGHT: Final = 12


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", type=Path, help="the site file")
    parser.add_argument("sensor", help="the sensor id")
    parser.add_argument("--since", default="2h", help="how far back (default 2h; up to keep)")
    parser.add_argument("--csv", action="store_true", help="time,value,quality rows")
    parser.add_argument("--state-dir", type=Path, help="override storage.path of the site file")


def run(args: argparse.Namespace) -> int:
    import time

    from edge_agent.config.diagnostics import ConfigError
    from edge_agent.config.loader import load_site
    from edge_agent.config.messages import suggest
    from edge_agent.config.state_dir import state_dir_of
    from edge_agent.config.units import parse_duration
    from edge_agent.history.store import HistoryError, open_for_reading

    try:
        since_ns = parse_duration(args.since)
    except ValueError as exc:
        print(f"edge-agent history: --since {args.since!r}: {exc}", file=sys.stderr)
        return 2
    try:
        config = load_site(args.site)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.sensor not in config.sensors:
        meant = suggest(args.sensor, list(config.sensors))
        hint = f" (did you mean `{meant}`?)" if meant else ""
        print(
            f"edge-agent history: no sensor `{args.sensor}` in {args.site}{hint}", file=sys.stderr
        )
        return 2
    state_dir = args.state_dir or state_dir_of(config, args.site)
    try:
        store = open_for_reading(state_dir)
        try:
            rows = list(store.rows(time.time_ns() - since_ns, sensor=args.sensor))
        finally:
            store.close()
    except HistoryError as exc:
        print(f"edge-agent history: {exc}", file=sys.stderr)
        return 1
    if args.csv or not sys.stdout.isatty():
        _csv(rows)
    else:
        sensor = config.sensors[args.sensor]
        limits = _limits(config, args.sensor)
        print(chart(rows, limits, args.sensor, sensor.unit, config.site.timezone))
    if not rows:
        print(
            f"edge-agent history: no readings of {args.sensor} in the last {args.since}",
            file=sys.stderr,
        )
    return 0


def _csv(rows: list[Row]) -> None:
    from edge_agent.alerts import format_time_ns

    # The csv module quotes a text value (a fault text with a comma, a quote, a line break).
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["time", "value", "quality"])
    for row in rows:
        value = "" if row.value is None else str(row.value)
        out.writerow([format_time_ns(row.time_ns), value, row.quality.value])


def _limits(config: SiteConfig, sensor: str) -> dict[str, float]:
    """The band limits of the rules on ``sensor``, by label (``temp-high``)."""
    limits: dict[str, float] = {}
    for rule in config.rules:
        if rule.sensor != sensor:
            continue
        for band_name, band in (("high", rule.high), ("low", rule.low)):
            if band is not None:
                limits[f"{rule.id} {band_name}"] = float(band.limit)
    return limits


def chart(
    rows: list[Row], limits: dict[str, float], sensor: str, unit: str | None, zone: str = "UTC"
) -> str:
    """Values over time as text: one column per time slice (its lowest to highest value),
    the limits as lines of ``-`` named on the right."""
    from edge_agent.common.local_time import local_text

    numbers = [  # a boolean (a run contact) as 0 and 1
        (r.time_ns, float(r.value))
        for r in rows
        if isinstance(r.value, int | float) and math.isfinite(r.value)
    ]
    if not numbers:
        return f"{sensor}: no numeric readings to chart"
    low = min([v for _, v in numbers] + list(limits.values()))
    high = max([v for _, v in numbers] + list(limits.values()))
    # In halves: high - low of values near the float limit is infinite.
    half_span = high / 2 - low / 2 or 0.5
    first, last = numbers[0][0], numbers[-1][0]
    width = max(1, min(CHART_WIDTH, len(numbers)))
    slices: list[list[float]] = [[] for _ in range(width)]
    for t, v in numbers:
        slices[min(width - 1, int((t - first) * width / max(1, last - first + 1)))].append(v)

    def row_of(value: float) -> int:
        return round((high / 2 - value / 2) / half_span * (CHART_HEIGHT - 1))

    grid = [[" "] * width for _ in range(CHART_HEIGHT)]
    labels = [""] * CHART_HEIGHT
    for name, limit in limits.items():
        line = row_of(limit)
        grid[line] = ["-"] * width
        labels[line] = f" {name} {limit:g}"
    for column, values in enumerate(slices):
        if values:
            for line in range(row_of(max(values)), row_of(min(values)) + 1):
                grid[line][column] = "*"
    unit_text = f" {unit}" if unit else ""
    lines = [f"{sensor}{unit_text}: {len(numbers)} readings, {low:g} .. {high:g}"]
    for line in range(CHART_HEIGHT):
        step = line / (CHART_HEIGHT - 1) * half_span
        value = high - step - step
        lines.append(f"{value:>10.4g} |{''.join(grid[line])}|{labels[line]}")
    lines.append(f"{'':>10}  {local_text(first, zone)} .. {local_text(last, zone)}")
    return "\n".join(lines)
