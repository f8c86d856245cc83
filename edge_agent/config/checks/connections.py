"""Connection settings: hosts without scheme or port, serial unit ids."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from edge_agent.config.checks.common import (
    items_of,
)
from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.document import Document
from edge_agent.config.messages import describe_value

_HOST_WITH_PORT: Final = re.compile(r"^([^:\s]+):(\d+)$")


def _host_problem(host: str, port_key: str) -> str | None:
    """Why ``host`` is not a bare host name or address (``None`` when it is one)."""
    if "://" in host:
        scheme, _, rest = host.partition("://")
        bare = rest.split("/")[0].rsplit(":", 1)[0] if rest else "10.0.7.21"
        return (
            f"`host` is a name or an address, not a URL: write {bare or '10.0.7.21'} "
            f"(without {scheme}://; the port goes in `{port_key}:`)"
        )
    with_port = _HOST_WITH_PORT.match(host)
    if with_port:
        return (
            f"`host` holds no port: write host: {with_port.group(1)} and "
            f"{port_key}: {with_port.group(2)}"
        )
    if any(char.isspace() for char in host) or not host.strip():
        return f"`host` {describe_value(host)} is not a host name or address"
    return None


def check_hosts(doc: Document) -> Iterator[Diagnostic]:
    """`host: 10.0.7.21:502` or `host: tcp://plc`: the port and the scheme have keys of
    their own, and a host with them never resolves."""
    places: list[tuple[str | int, ...]] = [
        ("connections", name, "host")
        for name, connection in items_of(doc.get("connections"))
        if connection.get("protocol") == "modbus-tcp"
    ]
    places.append(("forwarding", "mqtt", "host"))
    for path in places:
        host = doc.get(*path)
        if isinstance(host, str):
            problem = _host_problem(host, "port")
            if problem is not None:
                yield doc.at(path, problem)


_BROADCAST: Final = (
    "unit_id 0 is the broadcast address on a serial bus: no device answers a read sent "
    "to it; use the device's address (1–247)"
)


def check_rtu_broadcast(doc: Document) -> Iterator[Diagnostic]:
    """Unit id 0 on a serial bus is the broadcast address: devices act on a broadcast
    write but never answer, so every read of it would time out. (Modbus TCP devices often
    answer unit 0 for themselves, so it stays allowed there.)"""
    serial: set[str] = set()
    for name, connection in items_of(doc.get("connections")):
        protocol = connection.get("protocol")
        if protocol == "modbus-rtu" or (
            protocol == "modbus-tcp" and connection.get("framer") == "rtu"
        ):
            serial.add(name)
            unit = connection.get("unit_id")
            if isinstance(unit, int) and not isinstance(unit, bool) and unit == 0:
                yield doc.at(("connections", name, "unit_id"), _BROADCAST)
    for sensor_id, sensor in items_of(doc.get("sensors")):
        unit = sensor.get("unit_id")
        via = sensor.get("connection")
        if not isinstance(via, str) or via not in serial or isinstance(unit, bool):
            continue
        if unit == 0:
            yield doc.at(("sensors", sensor_id, "unit_id"), _BROADCAST)
        elif isinstance(unit, int) and 247 < unit <= 255:
            yield doc.at(
                ("sensors", sensor_id, "unit_id"),
                f"unit_id {unit} is reserved on a serial bus; device addresses are 1–247",
            )
