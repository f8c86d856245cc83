"""`edge-agent print-config FILE`: the configuration the agent (or, for a hub file, the
hub) would run.

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
from edge_agent.redaction import redact


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the site file or hub file")


def render(data: object, width: int | None = None) -> str:
    """Data as block-style YAML, keys in model order (lines wrapped past ``width``)."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    if width is not None:
        yaml.width = width
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _is_hub_file(path: Path) -> bool:
    """A top-level ``hub:`` key makes a hub file (as for ``validate``)."""
    from edge_agent.config.loader import load_document

    doc, _problems = load_document(path)
    return doc is not None and "hub" in doc.data


def _print_hub(path: Path) -> int:
    from edge_agent.hub.config import load_hub
    from edge_agent.service.secret_scan import register_document_secrets

    config, diagnostics = load_hub(path)
    for diagnostic in diagnostics:
        print(format_diagnostic(diagnostic), file=sys.stderr)
    if config is None:
        return 1
    data = config.model_dump(mode="json", by_alias=True)
    # Secret references print as ***; the values they resolve to are hidden from any
    # other field too (a key pasted into a URL, say).
    register_document_secrets(config.model_dump(mode="python"), path.absolute().parent)
    sys.stdout.write(redact(render(data)))
    return 0


def run(args: argparse.Namespace) -> int:
    from edge_agent.config.loader import check_site_files
    from edge_agent.config.models import dump_for_print
    from edge_agent.service.secret_scan import register_config_secrets

    try:
        if _is_hub_file(Path(args.file)):
            return _print_hub(Path(args.file))
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
