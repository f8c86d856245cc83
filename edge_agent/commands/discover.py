"""``edge-agent discover opcua ENDPOINT``: browse a server and print the site file's
``connections:`` and ``sensors:`` for every variable a rule can use.

``--site SITE.yaml --connection NAME`` takes the endpoint, security and user of a connection
already in a site file (then only ``sensors:`` are printed: the connection is there). Ids
come from browse paths (``Line1/P101/Temp`` → ``line1_p101_temp``; a clash gets a short
hash of the node id), ``node:`` is the NodeId string, ``unit:`` the EngineeringUnits where
the server has them. Variables that are not numbers or booleans, or cannot be read, are
listed on stderr as skipped, with why. Progress goes to stderr: a counter updated in place
on a terminal, a line every two seconds otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from edge_agent.commands.print_config import render
from edge_agent.common.atomic import write_atomic

if TYPE_CHECKING:
    from edge_agent.config.models import OpcUa, Sensor
    from edge_agent.sources.opcua.browse import Walk

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
PROGRESS_LINE_S: Final = 2.0
DEFAULT_DEPTH: Final = 10
CONNECT_TIMEOUT_S: Final = 10.0
YAML_WIDTH: Final = 4096  # a browse path on one line, not folded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=["opcua"], help="what to discover")
    parser.add_argument("endpoint", nargs="?", help="opc.tcp://host:port/path")
    parser.add_argument("--site", type=Path, help="a site file whose connection to use")
    parser.add_argument("--connection", help="that connection's name (with --site)")
    parser.add_argument("--root", default="i=85", help="where to start (default: Objects)")
    parser.add_argument(
        "--depth", type=int, default=DEFAULT_DEPTH, help=f"levels (default {DEFAULT_DEPTH})"
    )
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="GLOB",
        help="keep browse paths that match (e.g. 'Line1/*/Temp*'); repeatable",
    )
    parser.add_argument(
        "--standard-nodes",
        action="store_true",
        help="also the OPC UA standard's own nodes (namespace 0: Server, diagnostics)",
    )
    parser.add_argument("--mode", choices=["subscribe", "poll"], default="subscribe")
    parser.add_argument("--name", default="ua1", help="the new connection's name")
    parser.add_argument("-o", "--output", type=Path, help="write here (must not exist)")


def run(args: argparse.Namespace) -> int:
    connection = _connection(args)
    if connection is None:
        return EXIT_USAGE
    config, base_dir, existing = connection
    if not 1 <= args.depth <= 50:
        print("edge-agent discover: --depth is 1..50", file=sys.stderr)
        return EXIT_USAGE
    from asyncua import ua
    from asyncua.ua.uaerrors import UaError

    try:
        ua.NodeId.from_string(args.root)
    except (ValueError, UaError):
        print(
            f"edge-agent discover: --root {args.root!r} is not a node id (e.g. i=85, ns=2;s=Line1)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.output is not None and args.output.exists():
        print(f"{args.output}: exists; not overwritten", file=sys.stderr)
        return EXIT_USAGE
    if args.output is not None and not args.output.absolute().parent.is_dir():
        # Said now, not after a browse of minutes whose result could not be written.
        print(f"{args.output}: no folder {args.output.parent}", file=sys.stderr)
        return EXIT_USAGE
    started = time.monotonic()
    # asyncua's own warnings (a session timeout it adjusted...) are not the installer's.
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    try:
        found = asyncio.run(_discover(config, base_dir, args, sys.stderr))
    except Exception as exc:  # one line for an installer, never a traceback
        print(f"\nedge-agent discover: {config.endpoint}: {_reason(exc)}", file=sys.stderr)
        return EXIT_FAILED
    _drop_existing(found, existing, args)
    if sys.stderr.isatty():
        print(file=sys.stderr)  # ends the progress counter's line
    for path, why in found.skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    document = _document(found, config, args, existing)
    if args.output is not None:
        write_atomic(args.output, document.encode(), mode=0o644)
    else:
        sys.stdout.write(document)
    print(
        f"{len(found.variables)} sensors, {len(found.skipped)} skipped, {found.visited} nodes "
        f"browsed in {time.monotonic() - started:.1f} s"
        + (" (stopped at the node limit: narrow --root or --depth)" if found.truncated else ""),
        file=sys.stderr,
    )
    return EXIT_OK


def _connection(args: argparse.Namespace) -> tuple[OpcUa, Path, dict[str, Sensor]] | None:
    """The connection to browse, the folder its files are relative to, and the sensors of
    the site file (none without ``--site``)."""
    from pydantic import ValidationError

    from edge_agent.config.diagnostics import ConfigError
    from edge_agent.config.loader import load_site
    from edge_agent.config.models import OpcUa

    if args.site is not None:
        if not args.connection:
            print("edge-agent discover: --site needs --connection NAME", file=sys.stderr)
            return None
        try:
            site = load_site(args.site)
        except ConfigError as exc:
            print(str(exc), file=sys.stderr)
            return None
        found = site.connections.get(args.connection)
        if not isinstance(found, OpcUa):
            names = ", ".join(n for n, c in site.connections.items() if isinstance(c, OpcUa))
            print(
                f"edge-agent discover: {args.site} has no OPC UA connection "
                f"{args.connection!r} (it has: {names or 'none'})",
                file=sys.stderr,
            )
            return None
        return found, args.site.absolute().parent, dict(site.sensors)
    if not args.endpoint:
        print("edge-agent discover: give ENDPOINT, or --site and --connection", file=sys.stderr)
        return None
    try:
        config = OpcUa.model_validate({"protocol": "opcua", "endpoint": args.endpoint})
    except ValidationError:
        print(f"edge-agent discover: {args.endpoint!r} is not opc.tcp://…", file=sys.stderr)
        return None
    return config, Path.cwd(), {}


def _drop_existing(found: Walk, existing: dict[str, Sensor], args: argparse.Namespace) -> None:
    """Run again with ``--site``: a node the site file reads already on this connection is
    skipped, so the fragment adds only what is new (an id twice would not validate)."""
    from asyncua import ua

    read: dict[str, str] = {}
    for key, sensor in existing.items():
        if sensor.connection == args.connection and sensor.node is not None:
            try:
                read[ua.NodeId.from_string(sensor.node).to_string()] = key
            except (ValueError, RuntimeError):  # an nsu= id or one asyncua cannot parse
                read[sensor.node] = key
    kept = []
    for variable in found.variables:
        known = read.get(variable.node)
        if known is None:
            kept.append(variable)
        else:
            found.skipped.append(("/".join(variable.path), f"already in {args.site} as {known}"))
    found.variables = kept


async def _discover(config: OpcUa, base_dir: Path, args: argparse.Namespace, out: TextIO) -> Walk:
    from asyncua import ua
    from asyncua.client.client import Client
    from asyncua.ua.uaerrors import UaStatusCodeError

    from edge_agent.sources.opcua.browse import walk
    from edge_agent.sources.opcua.refusals import Attempt, ConnectSteps, named_refusal
    from edge_agent.sources.opcua.security import apply_security, check_server_endpoint

    client = Client(config.endpoint, timeout=CONNECT_TIMEOUT_S)
    client.name = client.description = "edge-agent discover"
    steps = ConnectSteps(client)
    secured = await apply_security(client, config, base_dir)
    if secured is not None:  # the pinned certificate and the policy, as the agent checks
        security = config.security
        await check_server_endpoint(
            config.endpoint, security.policy, security.mode, secured.trusted, CONNECT_TIMEOUT_S
        )
    try:
        await asyncio.wait_for(client.connect(), CONNECT_TIMEOUT_S * 2)
    except Exception as exc:
        # The same refusal, with its cause and fix, as `read` and the running agent give.
        attempt = Attempt(steps.current, secured, config.username)
        named = await named_refusal(exc, attempt, config, CONNECT_TIMEOUT_S)
        if named is not None:
            raise named from exc
        raise
    try:
        root = ua.NodeId.from_string(args.root)
        try:  # a root that is not there would browse to "0 sensors" without a word
            await client.get_node(root).read_browse_name()
        except UaStatusCodeError as exc:
            raise LookupError(f"--root {args.root}: {exc}") from None
        return await walk(
            client,
            root,
            args.depth,
            args.filter,
            _progress(out),
            standard_nodes=args.standard_nodes,
            max_nodes_per_read=config.max_nodes_per_read,
        )
    finally:
        await client.disconnect()


def _progress(out: TextIO) -> Any:
    on_terminal = out.isatty()
    last = [time.monotonic()]

    def report(visited: int, variables: int) -> None:
        text = f"discover: {visited} nodes browsed, {variables} variables"
        now = time.monotonic()
        if on_terminal:
            out.write(f"\r{text}")
            out.flush()
        elif now - last[0] >= PROGRESS_LINE_S:
            last[0] = now
            print(text, file=out, flush=True)

    return report


def _document(
    found: Walk, config: OpcUa, args: argparse.Namespace, existing: Iterable[str] = ()
) -> str:
    from edge_agent.config.sensor_ids import unique_id

    name = args.connection if args.site is not None else args.name
    taken: set[str] = set(existing)  # the site file's ids: not made twice
    sensors: dict[str, dict[str, Any]] = {}
    for variable in sorted(found.variables, key=lambda v: (v.path, v.node)):
        key = unique_id("_".join(variable.path), variable.node, taken)
        sensor: dict[str, Any] = {"connection": name, "node": variable.node}
        if variable.unit:
            sensor["unit"] = variable.unit
        sensor["description"] = f"{'/'.join(variable.path)} ({variable.data_type})"
        sensors[key] = sensor
    data: dict[str, Any] = {}
    if args.site is None:
        data["connections"] = {
            name: {"protocol": "opcua", "endpoint": config.endpoint, "mode": args.mode}
        }
    data["sensors"] = sensors
    header = (
        f"# Made by `edge-agent discover opcua` from {config.endpoint} (root {args.root}, "
        f"depth {args.depth}): {len(sensors)} sensors, {len(found.skipped)} skipped.\n"
    )
    return header + render(data, width=YAML_WIDTH)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, OSError):
        return f"cannot connect: {exc.strerror or text}"
    return text[:300]
