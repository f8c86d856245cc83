"""``edge-agent import modbus-map FILE.csv``: a register map from a spreadsheet → the
site file's ``sensors:`` (see :mod:`edge_agent.config.modbus_map` for the columns).

The YAML goes to stdout (or ``-o FILE``, never over an existing file), every bad cell to
stderr as ``FILE:ROW:COL: error: column: message``; exit 1 when a row was refused (the good
rows are converted all the same), 2 when the file cannot be read at all. Include the result
from the site file (``include: [sensors/modbus.yaml]``) and run ``validate``.

CSV only: the readers of ``.xlsx`` pull in more than a small gateway should carry for one
import; a spreadsheet saves as CSV in one step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_agent.commands.print_config import render
from edge_agent.common.atomic import write_atomic
from edge_agent.config.diagnostics import format_diagnostic

EXIT_OK = 0
EXIT_ROWS_REFUSED = 1
EXIT_UNREADABLE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=["modbus-map"], help="what to import")
    parser.add_argument("file", type=Path, metavar="FILE.csv", help="the register map")
    parser.add_argument(
        "--connection", default="plc", help="the connection the sensors use (default: plc)"
    )
    parser.add_argument(
        "--addressing",
        choices=["zero", "one", "modicon"],
        help="the numbering of a plain `address` column: 0-based, 1-based or Modicon",
    )
    parser.add_argument("-o", "--output", type=Path, help="write here (must not exist)")


def run(args: argparse.Namespace) -> int:
    from edge_agent.config import yaml_reader
    from edge_agent.config.modbus_map import MAX_FILE_BYTES, MapError, convert

    name = str(args.file)
    try:
        if args.file.stat().st_size > MAX_FILE_BYTES:
            print(f"{name}: larger than {MAX_FILE_BYTES} bytes", file=sys.stderr)
            return EXIT_UNREADABLE
        data = args.file.read_bytes()
        try:
            text = data.decode("utf-8-sig")  # Excel writes a BOM
        except UnicodeDecodeError:  # Excel's "CSV" in Western Europe: the Windows code page
            text = data.decode("cp1252")
        converted = convert(text, name, args.connection, args.addressing)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{name}: cannot read: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except MapError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_UNREADABLE
    for problem in converted.problems:
        print(format_diagnostic(problem), file=sys.stderr)
    errors = sum(1 for p in converted.problems if p.is_error)
    header = (
        f"# Made by `edge-agent import modbus-map` from {args.file.name}: "
        f"{len(converted.sensors)} sensors on connection {args.connection!r}.\n"
    )
    document = header + render({"sensors": converted.sensors}, width=4096)
    if len(document.encode()) > yaml_reader.MAX_FILE_BYTES:  # the loader would refuse it
        print(
            f"{name}: {len(converted.sensors)} sensors make a file larger than "
            f"{yaml_reader.MAX_FILE_BYTES} bytes, the most a site file may hold: split the map",
            file=sys.stderr,
        )
        return EXIT_UNREADABLE
    if args.output is not None:
        if args.output.exists():
            print(f"{args.output}: exists; not overwritten", file=sys.stderr)
            return EXIT_UNREADABLE
        try:
            write_atomic(args.output, document.encode(), mode=0o644)
        except OSError as exc:  # a folder not made yet, no permission
            print(f"{args.output}: cannot write: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_UNREADABLE
    else:
        sys.stdout.write(document)
    print(
        f"{len(converted.sensors)} sensors from {converted.rows} rows"
        + (f"; {errors} rows refused (above)" if errors else ""),
        file=sys.stderr,
    )
    return EXIT_ROWS_REFUSED if errors else EXIT_OK
