"""`edge-agent read SITE.yaml [--sensor ID] [--json]`: read every sensor once and show it.

Installers run this to check wiring before they start the service: it connects to every
configured connection, reads each sensor once and prints sensor, value, unit, quality and
the raw registers (or, when the reading is bad, why). Exit 0 when every reading is good,
1 when any is not (a connection that cannot be reached included), 2 when the site file
cannot be used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from edge_agent.config.models import Sensor, SiteConfig
from edge_agent.interfaces import Source
from edge_agent.readings import Reading, Value, bad
from edge_agent.service.secret_scan import register_config_secrets
from edge_agent.sources import sensors_of

# Longest wait for all connections together: a gateway that accepts and never answers
# must not hang an installer's terminal.
OVERALL_TIMEOUT_S = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", type=Path, help="the site file (YAML)")
    parser.add_argument(
        "--sensor",
        action="append",
        metavar="ID",
        help="read only this sensor (repeat for several)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also show the sources' log messages"
    )


def run(args: argparse.Namespace) -> int:
    config = _load(args.site)
    if config is None:
        return 2
    register_config_secrets(config, args.site.absolute().parent)
    if args.sensor:
        unknown = [s for s in args.sensor if s not in config.sensors]
        if unknown:
            print(
                f"edge-agent read: no sensor {', '.join(unknown)} in {args.site}", file=sys.stderr
            )
            return 2
        config = config.model_copy(update={"sensors": {s: config.sensors[s] for s in args.sensor}})
    if not config.sensors:
        print(f"edge-agent read: {args.site} has no sensors", file=sys.stderr)
        return 2
    try:
        with _quiet_logs(not args.verbose):
            readings = asyncio.run(_read_all(config, args.site.absolute().parent))
    except TimeoutError:
        print(
            f"edge-agent read: no answer from every connection within {OVERALL_TIMEOUT_S:.0f}s",
            file=sys.stderr,
        )
        return 1
    order = {sid: i for i, sid in enumerate(config.sensors)}
    readings.sort(key=lambda r: order.get(r.sensor_id, len(order)))
    if args.json:
        print(json.dumps([_as_json(r, config) for r in readings], indent=2))
    else:
        print(format_table(readings, config))
    bad = [r for r in readings if not r.is_good]
    _explain_connections(readings, config)
    if bad:
        print(f"{len(bad)} of {len(readings)} sensors are not good", file=sys.stderr)
        return 1
    return 0


@contextlib.contextmanager
def _quiet_logs(quiet: bool) -> Iterator[None]:
    """The table already says what went wrong: keep the sources' warnings (and pymodbus'
    and asyncua's) off the terminal unless asked, and put the levels back afterwards."""
    if not quiet:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        yield
        return
    names = ("edge_agent.sources", "pymodbus", "asyncua")
    saved = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _load(path: Path) -> SiteConfig | None:
    from edge_agent.config.diagnostics import ConfigError
    from edge_agent.config.loader import load_site

    try:
        return load_site(path)
    except ConfigError as exc:
        # A missing file, a directory, bad YAML or a bad value: the loader's own line says
        # which, with file, line and column.
        print(str(exc), file=sys.stderr)
        print(f"edge-agent read: {path} cannot be used; fix it first", file=sys.stderr)
        return None


logger = logging.getLogger("edge_agent.sources.read")


def _protocol_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """One line, no traceback, for what a library's protocol callback raised (pymodbus on
    a malformed frame: asyncio's default printed "Fatal error ... Traceback"). The
    connection is dropped and the reading already says so."""
    exc = context.get("exception")
    logger.warning(
        "Protocol error on a connection.",
        extra={
            "error": context.get("message", ""),
            "exception": f"{type(exc).__name__}: {exc}"[:300] if exc is not None else None,
        },
    )


async def _read_all(config: SiteConfig, base_dir: Path) -> list[Reading]:
    from edge_agent.sources import build_sources

    asyncio.get_running_loop().set_exception_handler(_protocol_error)
    sources = build_sources(config, base_dir)
    try:
        async with asyncio.timeout(OVERALL_TIMEOUT_S):
            batches = await asyncio.gather(*(_read_source(s, config) for s in sources))
    finally:
        for source in sources:
            with contextlib.suppress(Exception):
                await source.close()
    return [r for batch in batches for r in batch]


async def _read_source(source: Source, config: SiteConfig) -> list[Reading]:
    """A source's readings; a source that fails anyway gives bad readings, not a traceback."""
    try:
        return await source.read_once()
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        now_ns = time.time_ns()
        return [bad(sid, reason, now_ns) for sid in sensors_of(config, source.name)]


def _explain_connections(readings: Sequence[Reading], config: SiteConfig) -> None:
    """One clear line per connection that could not be reached at all."""
    by_connection: dict[str, list[Reading]] = {}
    for reading in readings:
        sensor = config.sensors.get(reading.sensor_id)
        if sensor is not None:
            by_connection.setdefault(sensor.connection, []).append(reading)
    for name, batch in by_connection.items():
        reasons = {r.reason for r in batch}
        if all(not r.is_good for r in batch) and len(reasons) == 1:
            reason = next(iter(reasons))
            if reason and ("connect" in reason or "not connected" in reason):
                print(f"edge-agent read: connection {name}: {reason}", file=sys.stderr)


def format_value(value: Value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_raw(reading: Reading, sensor: Sensor | None = None) -> str:
    """Registers as 4-digit hex words (what a Modbus tool shows), coils and discrete
    inputs as 0/1, an OPC UA status as its text. A bad reading shows its reason first and
    then the registers it came from, when there were any (a NaN float, a string that is
    not text): those are what an installer compares with the device's manual."""
    shown = _format_raw_data(reading, sensor)
    if not reading.is_good and reading.reason:
        return f"{reading.reason} {shown}" if shown and shown != reading.reason else reading.reason
    return shown


def _format_raw_data(reading: Reading, sensor: Sensor | None) -> str:
    raw = reading.raw
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    register = sensor.register_ if sensor is not None else None
    if register is not None and register.table.is_bits:
        return "[" + " ".join(str(b) for b in raw) + "]"
    return "[" + " ".join(f"{w:04X}" for w in raw) + "]"


def format_table(readings: Sequence[Reading], config: SiteConfig) -> str:
    header = ("SENSOR", "VALUE", "UNIT", "QUALITY", "RAW / REASON")
    rows = [header]
    for r in readings:
        sensor = config.sensors.get(r.sensor_id)
        unit = (sensor.unit if sensor else None) or ""
        rows.append(
            (r.sensor_id, format_value(r.value), unit, r.quality.value, format_raw(r, sensor))
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        lines.append("  ".join([*cells, row[4]]).rstrip())
    return "\n".join(lines)


def _as_json(reading: Reading, config: SiteConfig) -> dict[str, Any]:
    sensor = config.sensors.get(reading.sensor_id)
    raw: Any = list(reading.raw) if isinstance(reading.raw, tuple) else reading.raw
    return {
        "sensor": reading.sensor_id,
        "value": reading.value,
        "unit": sensor.unit if sensor else None,
        "quality": reading.quality.value,
        "reason": reading.reason,
        "raw": raw,
        "source_time_ns": reading.source_time_ns,
    }
