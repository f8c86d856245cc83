"""How Modbus sensors are addressed: the right kind of address for the connection,
registers read twice as different types, 1-based Modicon numbers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from edge_agent.config.checks.common import (
    MODBUS,
    items_of,
    protocol_of,
    register_of,
)
from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.document import Document
from edge_agent.config.models import (
    Register,
)


def check_address_kinds(doc: Document) -> Iterator[Diagnostic]:
    """A sensor is addressed the way its connection speaks: `node:` for OPC UA,
    `register:` for Modbus."""
    for sensor_id, sensor in items_of(doc.get("sensors")):
        connection = sensor.get("connection")
        protocol = protocol_of(doc, connection)
        if protocol == "opcua":
            if "register" in sensor:
                yield doc.at(
                    ("sensors", sensor_id, "register"),
                    f"connection `{connection}` is OPC UA: address this sensor with `node:`, "
                    "not `register:`",
                    key=True,
                )
            if "unit_id" in sensor:
                yield doc.at(
                    ("sensors", sensor_id, "unit_id"),
                    f"`unit_id` is a Modbus setting; connection `{connection}` is OPC UA",
                    key=True,
                )
        elif protocol in MODBUS and "node" in sensor:
            yield doc.at(
                ("sensors", sensor_id, "node"),
                f"connection `{connection}` is Modbus: address this sensor with `register:`, "
                "not `node:`",
                key=True,
            )


def check_register_overlaps(doc: Document) -> Iterator[Diagnostic]:
    """Two sensors reading the same registers as different types is almost always a typo
    in an address (a warning: a status word read whole and as bits is legitimate)."""
    spans: dict[tuple[str, int, str], list[tuple[int, int, str, Register]]] = {}
    for sensor_id, sensor in items_of(doc.get("sensors")):
        connection = sensor.get("connection")
        if protocol_of(doc, connection) not in MODBUS:
            continue
        register = register_of(sensor.get("register"))
        if register is None or register.bit is not None:
            continue
        unit = sensor.get("unit_id", doc.get("connections", str(connection), "unit_id"))
        unit_id = unit if isinstance(unit, int) else 1
        key = (str(connection), unit_id, register.table.value)
        end = register.address + register.count - 1
        spans.setdefault(key, []).append((register.address, end, sensor_id, register))
    for (connection, unit_id, table), entries in spans.items():
        entries.sort(key=lambda entry: (entry[0], entry[1]))
        active: list[tuple[int, int, str, Register]] = []  # spans that reach this start
        for start, end, sensor_id, register in entries:
            active = [entry for entry in active if entry[1] >= start]
            earlier = list(active)
            active.append((start, end, sensor_id, register))
            for other_start, other_end, other_id, other in earlier:
                if other.value_type == register.value_type:
                    continue
                yield doc.at(
                    ("sensors", sensor_id, "register", "address"),
                    f"{table} {start}–{end} overlaps sensor `{other_id}` ({table} "
                    f"{other_start}–{other_end}, unit {unit_id} on `{connection}`), read there as "
                    f"{other.value_type.value} but here as {register.value_type.value}",
                    "warning",
                )


MODICON_RANGES: Final = {"holding": (40001, 49999, 40001), "input": (30001, 39999, 30001)}


def check_modicon_addresses(doc: Document) -> Iterator[Diagnostic]:
    """`address: 40021` on a holding register is usually 4x register 21 written the
    1-based way (protocol address 20); a warning, since some devices really map that high."""
    for sensor_id, sensor in items_of(doc.get("sensors")):
        register = register_of(sensor.get("register"))
        if register is None or register.table.value not in MODICON_RANGES:
            continue
        low, high, base = MODICON_RANGES[register.table.value]
        if low <= register.address <= high:
            number = register.address - base + 1
            yield doc.at(
                ("sensors", sensor_id, "register", "address"),
                f"address {register.address} looks like 1-based Modicon numbering "
                f"({register.table.value} register {number}); the 0-based protocol address "
                f"is {number - 1}. Ignore this if the device's map really uses "
                f"{register.address}",
                "warning",
            )
