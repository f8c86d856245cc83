"""The maintainx simulator: not built yet."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    print("edge-agent simulate maintainx: not built yet", file=sys.stderr)
    return 2
