"""`edge-agent validate`: not built yet."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*")


def run(args: argparse.Namespace) -> int:
    print("edge-agent validate: not built yet", file=sys.stderr)
    return 2
