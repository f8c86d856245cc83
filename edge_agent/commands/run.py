"""`edge-agent run SITE.yaml`: the agent as a service (see docs/operations.md).

Exit codes: 0 after SIGTERM/SIGINT, 2 for a site file with errors (printed like
``edge-agent validate``), 1 when the agent cannot start (state directory, health port),
70 when a task ended unexpectedly (state saved; for systemd or Docker to restart it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", type=Path, metavar="SITE.yaml", help="the site file")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the outbox and rule state live (default: the site file's storage.path)",
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "text"),
        default=None,
        help="override logging.format (auto: text on a terminal, JSON otherwise)",
    )


def run(args: argparse.Namespace) -> int:
    from edge_agent.config.diagnostics import format_diagnostic
    from edge_agent.service.isolated_load import check_isolated
    from edge_agent.service.logs import configure_logging
    from edge_agent.service.pipeline import AgentError

    site_path: Path = args.site
    if not site_path.is_file():
        print(f"{site_path}: error: (top): no such site file", file=sys.stderr)
        return 2
    site_path = site_path.resolve()
    # Checked in a child process: the loader's peak memory never stays in the agent.
    config, diagnostics, watched = check_isolated(site_path)
    if config is None:
        for diagnostic in diagnostics:
            print(format_diagnostic(diagnostic), file=sys.stderr)
        return 2
    configure_logging(config.logging.level, args.log_format or config.logging.format)
    log = logging.getLogger("edge_agent.run")
    for diagnostic in diagnostics:
        log.warning(format_diagnostic(diagnostic))
    state_dir = args.state_dir if args.state_dir is not None else Path(config.storage.path)
    state_dir = state_dir.resolve()

    from edge_agent.service.app import Service
    from edge_agent.service.health import HealthError

    async def main() -> int:
        service = Service(site_path, config, state_dir, watched_files=watched)
        return await service.run()

    try:
        return asyncio.run(main())
    except (AgentError, HealthError) as exc:
        log.error("The agent could not start.", extra={"error": str(exc)})
        return 1
