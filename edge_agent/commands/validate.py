"""`edge-agent validate FILE...`: every problem of site (and hub) files, one line each.

Exit 1 when any file has an error, 0 otherwise (warnings alone pass). The lines are
``file:line:col: error: path: message``; ``--format json`` prints one JSON object for tools.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge_agent.config.diagnostics import (
    Diagnostic,
    format_diagnostic,
    sort_diagnostics,
    summarize,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="site or hub files")
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: one line per problem (default); json: one object for tools",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 on warnings too (for CI and deploy scripts)"
    )
    parser.add_argument(
        "--skip-host-checks",
        action="store_true",
        help="do not open the certificate, key, secret and serial device files the file "
        "names (checking a file away from its gateway, e.g. in CI)",
    )


def _hub_diagnostics(path: Path) -> list[Diagnostic]:
    from edge_agent.hub.config import load_hub

    _model, diagnostics = load_hub(path)
    return diagnostics


def check_file(path: Path, host_checks: bool = True) -> list[Diagnostic]:
    """Every problem of one file, whichever kind it is (a top-level `hub:` makes a hub file).
    ``host_checks``: also open the files it names on this machine, as this user."""
    from edge_agent.config.env_refs import check_env_references
    from edge_agent.config.loader import check_site_files, load_document
    from edge_agent.service.secret_scan import register_document_secrets

    doc, diagnostics = load_document(path)
    if doc is None:
        return sort_diagnostics(diagnostics)
    # What this file's secrets resolve to is hidden from every line printed about it.
    register_document_secrets(doc.data, path.absolute().parent)
    # Unset ${VAR}s are checked here, where validate runs, not by the loader: the service
    # reads its own environment and reports a missing variable itself.
    unset = list(check_env_references(doc))
    from edge_agent.config.tls_files import check_tls_files

    # Certificate, key and secret files are checked on this machine, as this user.
    files = list(check_tls_files(doc)) if host_checks else []
    if "hub" in doc.data:
        return sort_diagnostics([*_hub_diagnostics(path), *unset, *files])
    from edge_agent.config.serial_devices import check_serial_devices

    _config, diagnostics = check_site_files(path)
    # The serial lines are checked against this machine: validate runs on the gateway.
    serial = list(check_serial_devices(doc)) if host_checks else []
    return sort_diagnostics([*diagnostics, *serial, *files, *unset])


def run(args: argparse.Namespace) -> int:
    files = [str(name) for name in args.files]
    diagnostics: list[Diagnostic] = []
    for name in files:
        try:
            diagnostics.extend(check_file(Path(name), not args.skip_host_checks))
        except Exception as exc:  # never a traceback for an engineer on a gateway
            diagnostics.append(
                Diagnostic(name, 1, 1, "error", (), f"internal error while checking: {exc!r}")
            )
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    if args.format == "json":
        report = {
            "files": files,
            "errors": errors,
            "warnings": warnings,
            "diagnostics": [d.as_json() for d in diagnostics],
        }
        print(json.dumps(report, indent=2))
    else:
        for diagnostic in diagnostics:
            print(format_diagnostic(diagnostic))
    print(summarize(diagnostics, files), file=sys.stderr)
    # --strict: a release pipeline that wants every warning answered before deploying.
    return 1 if errors or (args.strict and warnings) else 0
