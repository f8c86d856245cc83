"""A simulator's control endpoint: its map, and values set while it runs.

``simulate modbus`` and ``simulate opcua`` serve it on loopback (``--control-port``,
default the simulator's port + 1)::

    GET  /points                              the map: name, address, type, what drives it
    POST /set  {"name": "...", "value": 9.5}  hold a point at a value (true/false for bits)
    POST /set  {"name": "...", "value": null} back to its normal profile

``edge-agent simulate set HOST:PORT NAME VALUE`` (see :mod:`.control_client`) is the
client. A plain HTTP endpoint rather than a protocol write: Modbus cannot write input
registers or discrete inputs, and a value written over the protocol would be overwritten
by the profile at its next tick anyway.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from edge_agent.common.http import HttpServer, Limits, Request, Response

SetValue = Callable[[str, float | bool | None], Awaitable[None]]
"""(point name, value or None to release) → done; raises KeyError for an unknown name,
ValueError for a value the point cannot hold."""

CONTROL_HOST: Final = "127.0.0.1"
"""The control endpoint listens on loopback only, whatever ``--host`` the simulator has:
it takes values without a password."""
CONTROL_LIMITS: Final = Limits(max_connections=16, request_timeout_s=5.0, max_body_bytes=4096)


@dataclass(frozen=True)
class MapEntry:
    """One line of a simulator's map."""

    name: str
    address: str
    type: str
    unit: str
    driven_by: str


def format_map(entries: Sequence[MapEntry]) -> str:
    """The map as an aligned text table (``--list``)."""
    rows = [("NAME", "ADDRESS", "TYPE", "UNIT", "DRIVEN BY")]
    rows += [(e.name, e.address, e.type, e.unit or "-", e.driven_by) for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        + "  "
        + row[4]
        for row in rows
    )


def parse_value(raw: object) -> float | bool | None:
    """A JSON value for a point: a finite number, true/false, or null (release)."""
    if raw is None or isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float) and math.isfinite(raw):
        return float(raw)
    raise ValueError("value must be a finite number, true, false or null")


def _json(status: int, body: Any) -> Response:
    return Response(status, json.dumps(body).encode() + b"\n", "application/json")


class ControlServer:
    """Serves a simulator's map and takes values, on loopback."""

    def __init__(
        self, entries: Sequence[MapEntry], set_value: SetValue, host: str, port: int
    ) -> None:
        self._entries = list(entries)
        self._set_value = set_value
        self.server = HttpServer(host, port, self._respond, name="control", limits=CONTROL_LIMITS)

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        try:
            await self.server.start()
        except OSError as exc:
            raise CannotListen(CONTROL_HOST, self.server.port, exc, " (control)") from exc

    async def close(self) -> None:
        await self.server.close()

    async def _respond(self, request: Request) -> Response:
        if request.path == "/points" and request.method == "GET":
            return _json(200, [asdict(e) for e in self._entries])
        if request.path != "/set":
            return _json(404, {"error": "not found: GET /points or POST /set"})
        if request.method != "POST":
            return _json(405, {"error": "use POST"})
        try:
            body = json.loads(request.body)
            if not isinstance(body, dict) or not isinstance(body.get("name"), str):
                raise ValueError('the body must be {"name": "...", "value": ...}')
            name, value = body["name"], parse_value(body.get("value"))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            return _json(400, {"error": str(exc)})
        try:
            await self._set_value(name, value)
        except KeyError:
            known = ", ".join(e.name for e in self._entries[:20])
            return _json(404, {"error": f"no point {name!r}; known: {known}"})
        except ValueError as exc:
            return _json(400, {"error": str(exc)})
        return _json(200, {"name": name, "value": value})


def add_control_arguments(parser: argparse.ArgumentParser) -> None:
    """``--list`` and ``--control-port``, the same for every simulator with a map."""
    parser.add_argument(
        "--list", action="store_true", help="print the map (address, type, what drives it)"
    )
    parser.add_argument(
        "--control-port",
        type=int,
        default=None,
        help="loopback port of the control endpoint for 'simulate set' (default: port + 1; "
        "0: any free port)",
    )


def control_port(args: argparse.Namespace, served_port: int) -> int:
    """The control port asked for, else the port after the simulator's (any free one when
    the simulator itself took any free port)."""
    if args.control_port is not None:
        return int(args.control_port)
    return served_port + 1 if args.port else 0


def print_control(port: int, host: str = CONTROL_HOST) -> None:
    print(
        f"control on {host}:{port} (edge-agent simulate set {host}:{port} NAME VALUE)",
        flush=True,
    )


class CannotListen(Exception):
    """A simulator (or its control endpoint) could not bind: the command prints this one
    line and exits 1 (docs/simulators.md)."""

    def __init__(self, host: str, port: int, exc: BaseException, what: str = "") -> None:
        self.host, self.port = host, port
        number = getattr(exc, "errno", None)
        reason = os.strerror(number) if isinstance(number, int) and number > 0 else str(exc)
        super().__init__(f"cannot listen on {host}:{port}{what}: {reason}")


def bind_error(host: str, port: int, exc: BaseException) -> CannotListen:
    """The reason ``host:port`` cannot be bound, found by trying: a library that says only
    "could not start" (pymodbus) hides the errno."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except OSError as error:
        return CannotListen(host, port, error)
    return CannotListen(host, port, Exception(str(exc) or type(exc).__name__))


@contextlib.contextmanager
def library_logs_quiet() -> Iterator[None]:
    """While a simulator binds: asyncua logs a failed bind with its traceback and pymodbus
    with a line of its own, before the command's one line says it all."""
    before = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(before)
