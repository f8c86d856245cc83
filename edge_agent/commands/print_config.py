"""`edge-agent print-config FILE`: the configuration the agent would run.

Includes merged, defaults filled in, every secret reference shown as ``***``. An invalid
file prints its problems (as ``validate`` does) and exits 1.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from ruamel.yaml import YAML

from edge_agent.config.diagnostics import format_diagnostic


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the site file")


def render(data: object) -> str:
    """Data as block-style YAML, keys in model order."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def run(args: argparse.Namespace) -> int:
    from edge_agent.config.loader import check_site_files
    from edge_agent.config.models import dump_for_print
    from edge_agent.service.secret_scan import register_config_secrets

    try:
        config, diagnostics = check_site_files(Path(args.file))
    except Exception as exc:  # never a traceback for an engineer on a gateway
        print(f"{args.file}:1:1: error: (file): internal error: {exc!r}", file=sys.stderr)
        return 1
    for diagnostic in diagnostics:
        print(format_diagnostic(diagnostic), file=sys.stderr)
    if config is None:
        return 1
    register_config_secrets(config, Path(args.file).absolute().parent)
    sys.stdout.write(render(dump_for_print(config)))
    return 0
