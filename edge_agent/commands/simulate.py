"""`edge-agent simulate modbus|opcua|maintainx --port P`: one simulator on its own;
`edge-agent simulate set HOST:PORT NAME VALUE`: drive a running one.

Each simulator lives in ``edge_agent.simulators.<kind>`` and exposes
``add_arguments(parser)`` and ``run(args) -> int`` like a command.
"""

from __future__ import annotations

import argparse
import importlib
from typing import cast

from edge_agent.cli import CommandModule

KINDS = ("modbus", "opcua", "maintainx", "set")
# Module of each kind under ``edge_agent.simulators`` (``set`` is a client, not a simulator).
MODULES = {"set": "control_client"}
HELP = {"set": "set a running simulator's point: HOST:PORT NAME VALUE, or --profile FILE"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind in KINDS:
        kind_parser = sub.add_parser(kind, help=HELP.get(kind, f"the {kind} simulator"))
        _load(kind).add_arguments(kind_parser)


def _load(kind: str) -> CommandModule:
    return cast(
        CommandModule, importlib.import_module(f"edge_agent.simulators.{MODULES.get(kind, kind)}")
    )


def run(args: argparse.Namespace) -> int:
    return _load(args.kind).run(args)
