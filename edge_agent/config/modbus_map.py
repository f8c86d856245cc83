"""A Modbus register map (CSV, as kept in a spreadsheet) → the site file's ``sensors:``.

One row per sensor. Columns (header row required, names in any case, order free):

- ``name`` (required): becomes the sensor id (lower case, ``_`` for anything else);
- the address, in one of three numberings, said by the column's name or ``--addressing``:
  ``address0`` (0-based protocol address, as the site file), ``address1`` (1-based register
  number, as most manuals) or ``modicon`` (``40001``/``400001`` holding, ``3…`` input,
  ``0…`` coil, ``1…`` discrete; the table comes from the number). A plain ``address`` column
  needs ``--addressing``;
- ``table`` (``holding``, ``input``, ``coil``, ``discrete``): required unless Modicon;
- ``type`` (``int16`` … ``float64``, ``bool``, ``string``; PLC names such as ``real``,
  ``dint`` and ``word`` too), ``word_order`` / ``byte_order`` (``big``/``little``) or one
  ``order`` column (``ABCD``, ``CDAB``, ``BADC``, ``DCBA``), ``scale``, ``offset``, ``unit``,
  ``unit_id``, ``length`` (strings), ``bit``, ``description``: optional.

Commas, tabs or (as Excel writes in much of Europe) semicolons separate the cells; with
semicolons or tabs a decimal comma (``0,1``) is read too. The file is UTF-8 or else Windows-1252.

Every bad cell is reported at its place (``FILE:ROW:COL: error: column: message``, the
validator's format; ROW counts the header as 1); the good rows are converted all the same,
and a row is checked by the same site-file model the agent loads, so the result validates.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import ValidationError

from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.models import Sensor
from edge_agent.config.sensor_ids import sensor_id
from edge_agent.errors import EdgeAgentError

Addressing = Literal["zero", "one", "modicon"]

MAX_ROWS: Final = 100_000
MAX_FILE_BYTES: Final = 20 * 1024 * 1024
ADDRESS_COLUMNS: Final[dict[str, Addressing | None]] = {
    "address0": "zero",
    "address1": "one",
    "modicon": "modicon",
    "address": None,  # numbering from --addressing
}
TYPE_NAMES: Final = {
    "bool": "bool",
    "boolean": "bool",
    "bit": "bool",
    "int16": "int16",
    "int": "int16",
    "uint16": "uint16",
    "uint": "uint16",
    "word": "uint16",
    "int32": "int32",
    "dint": "int32",
    "uint32": "uint32",
    "udint": "uint32",
    "dword": "uint32",
    "int64": "int64",
    "lint": "int64",
    "uint64": "uint64",
    "ulint": "uint64",
    "float32": "float32",
    "float": "float32",
    "real": "float32",
    "float64": "float64",
    "double": "float64",
    "lreal": "float64",
    "string": "string",
}
# ABCD = the bytes of a 32-bit value as they come, most significant first.
ORDERS: Final = {
    "abcd": ("big", "big"),
    "cdab": ("little", "big"),
    "badc": ("big", "little"),
    "dcba": ("little", "little"),
}
MODICON_TABLES: Final = {"4": "holding", "3": "input", "0": "coil", "1": "discrete"}
KNOWN_COLUMNS: Final = frozenset(
    {
        "name",
        "table",
        "type",
        "word_order",
        "byte_order",
        "order",
        "scale",
        "offset",
        "unit",
        "unit_id",
        "length",
        "bit",
        "description",
        *ADDRESS_COLUMNS,
    }
)


class MapError(EdgeAgentError):
    """The file as a whole cannot be read (no header, no name or address column)."""


@dataclass
class Converted:
    sensors: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[Diagnostic] = field(default_factory=list)
    rows: int = 0


class _BadCell(Exception):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


def convert(
    text: str, file: str, connection: str, addressing: Addressing | None = None
) -> Converted:
    """The sensors of a CSV register map, and a diagnostic for every bad cell."""
    # Excel in a European locale separates with `;` (the comma is its decimal mark), and
    # "Text (Tab delimited)" with tabs; a tie is a comma.
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise MapError(f"{file}: empty file; the first row names the columns") from None
    columns = [c.strip().lower().replace(" ", "_") for c in header]
    index: dict[str, int] = {}
    for i, name in enumerate(columns):
        if name in index:  # which one would be meant? never silently the last
            raise MapError(
                f"{file}:1:{i + 1}: `{name}` is named twice (columns {index[name] + 1} and {i + 1})"
            )
        if name:
            index[name] = i
    address_columns = [c for c in columns if c in ADDRESS_COLUMNS]
    if "name" not in index:
        raise MapError(f"{file}:1: the header needs a `name` column (found: {', '.join(header)})")
    if len(address_columns) != 1:
        raise MapError(
            f"{file}:1: the header needs one address column: address0 (0-based), address1 "
            "(1-based) or modicon (40001…), or address with --addressing"
        )
    column = address_columns[0]
    numbering = ADDRESS_COLUMNS[column] or addressing
    if numbering is None:
        raise MapError(
            f"{file}:1:{index[column] + 1}: `address` does not say its numbering: name the "
            "column address0, address1 or modicon, or pass --addressing zero|one|modicon"
        )
    result = Converted()
    unknown = [c for c in columns if c and c not in KNOWN_COLUMNS]
    for name in unknown:
        result.problems.append(
            Diagnostic(file, 1, index[name] + 1, "warning", (name,), "unknown column, ignored")
        )
    first_row_of: dict[str, int] = {}
    for row_number, row in enumerate(reader, start=2):
        if row_number - 1 > MAX_ROWS:
            raise MapError(f"{file}: more than {MAX_ROWS} rows")
        if not any(cell.strip() for cell in row):
            continue
        result.rows += 1
        cells = {name: row[i].strip() for name, i in index.items() if i < len(row)}
        try:
            key, sensor = _sensor(cells, column, numbering, connection, delimiter != ",")
        except _BadCell as bad:
            col = index.get(bad.column, 0) + 1
            result.problems.append(
                Diagnostic(file, row_number, col, "error", (bad.column,), str(bad))
            )
            continue
        if key in result.sensors:
            result.problems.append(
                Diagnostic(
                    file,
                    row_number,
                    index["name"] + 1,
                    "error",
                    ("name",),
                    f"sensor id {key!r} is already made by row {first_row_of[key]}",
                )
            )
            continue
        first_row_of[key] = row_number
        result.sensors[key] = sensor
    return result


def _sensor(
    cells: dict[str, str],
    column: str,
    numbering: Addressing,
    connection: str,
    decimal_comma: bool = False,
) -> tuple[str, dict[str, Any]]:
    name = cells.get("name", "")
    key = sensor_id(name)
    if not key:
        raise _BadCell("name", "a name with at least one letter or digit is required")
    table, address = _address(cells.get(column, ""), cells.get("table", ""), column, numbering)
    register: dict[str, Any] = {"table": table, "address": address}
    if cells.get("type"):
        kind = TYPE_NAMES.get(cells["type"].lower())
        if kind is None:
            raise _BadCell("type", f"{cells['type']!r} is not a type; one of {_types()}")
        register["type"] = kind
    if cells.get("order"):
        order = ORDERS.get(cells["order"].lower())
        if order is None:
            raise _BadCell("order", f"{cells['order']!r}: ABCD, CDAB, BADC or DCBA")
        register["word_order"], register["byte_order"] = order
    for name in ("word_order", "byte_order"):
        if cells.get(name):
            value = cells[name].lower()
            if value not in ("big", "little"):
                raise _BadCell(name, f"{cells[name]!r}: big or little")
            register[name] = value
    for name in ("length", "bit"):
        if cells.get(name):
            register[name] = _integer(cells[name], name)
    sensor: dict[str, Any] = {"connection": connection, "register": register}
    if cells.get("unit"):
        sensor["unit"] = cells["unit"]
    if cells.get("description"):
        sensor["description"] = cells["description"]
    if cells.get("unit_id"):
        sensor["unit_id"] = _integer(cells["unit_id"], "unit_id")
    scale = {n: _number(cells[n], n, decimal_comma) for n in ("scale", "offset") if cells.get(n)}
    if scale:
        sensor["scale"] = {
            **({"factor": scale["scale"]} if "scale" in scale else {}),
            **({"offset": scale["offset"]} if "offset" in scale else {}),
        }
    try:  # the model the agent loads: what passes here passes `validate`
        Sensor.model_validate(sensor)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = [str(p) for p in error["loc"]]
        message = error["msg"].removeprefix("Value error, ")
        raise _BadCell(
            _column_of(where, message, column), f"{'.'.join(where)}: {message}"
        ) from None
    return key, sensor


def _address(text: str, table: str, column: str, numbering: Addressing) -> tuple[str, int]:
    if not (text.isascii() and text.isdigit()):  # not `²` or `４`, which int() refuses
        raise _BadCell(column, f"{text!r} is not a register number")
    number = int(text)
    if numbering == "modicon":
        if len(text) not in (5, 6) or text[0] not in MODICON_TABLES or int(text[1:]) < 1:
            raise _BadCell(
                column, f"{text} is not a Modicon number (40001…, 30001…, 00001…, 10001…)"
            )
        implied = MODICON_TABLES[text[0]]
        if table and table.lower() != implied:
            raise _BadCell("table", f"{table!r}, but {text} is in the {implied} table")
        if int(text[1:]) > 65536:
            raise _BadCell(column, f"{text} is past the last register ({text[0]}65536)")
        return implied, int(text[1:]) - 1
    table = table.lower()
    if table not in MODICON_TABLES.values():
        message = "a table (holding, input, coil or discrete) is required"
        raise _BadCell("table", f"{table!r}: {message}" if table else message)
    address = number - 1 if numbering == "one" else number
    if not 0 <= address <= 65535:
        first = 1 if numbering == "one" else 0
        raise _BadCell(column, f"{number} is outside {first}..{65535 + first}")
    return table, address


def _integer(text: str, column: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _BadCell(column, f"{text!r} is not a whole number") from None


def _number(text: str, column: str, decimal_comma: bool = False) -> float:
    if decimal_comma and text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    if "," in text and "." not in text:
        raise _BadCell(column, f"{text!r}: write the decimal point as a dot")
    try:
        value = float(text)
    except ValueError:
        raise _BadCell(column, f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise _BadCell(column, f"{text!r} is not a finite number")
    return value


def _column_of(loc: list[str], message: str, address_column: str) -> str:
    """The CSV column a model error belongs to (``register.bit`` → ``bit``); an error of
    the register as a whole, at the cell its message names (its type by default)."""
    last = loc[-1] if loc else "name"
    if last == "register":
        for name in ("length", "bit"):
            if f"`{name}:`" in message:
                return name
        return address_column if "runs past" in message else "type"
    return {"factor": "scale", "address": address_column}.get(last, last)


def _types() -> str:
    return ", ".join(sorted(set(TYPE_NAMES.values())))
