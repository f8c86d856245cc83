"""`edge-agent run SITE.yaml`: the agent as a service (see docs/operations.md).

Exit codes: 0 after SIGTERM/SIGINT, 2 for a site file with errors (printed like
``edge-agent validate``) when there is no last good configuration to run instead (see
:mod:`edge_agent.service.last_good`), 1 when the agent cannot start (state directory, health
port), 3 when the state folder was written by a later release (a rollback: see
docs/operations.md, "Rollback"), 70 when a task ended unexpectedly (state saved; for systemd
or Docker to restart it). The systemd unit does not restart on 2 or 3: a broken file stays
broken until edited, a later release's state stays so until that release is back.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Final

from edge_agent.common.journald import print_error
from edge_agent.common.schema_version import NewerFormatError

EXIT_NEWER_STATE: Final = 3
"""A file of the state folder was written by a later release: see the message."""

if TYPE_CHECKING:
    from edge_agent.config.diagnostics import Diagnostic
    from edge_agent.config.models import SiteConfig


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
    # Until the event loop takes SIGHUP over, a `systemctl reload` during the start must not
    # end the process (SIGHUP's default action); the file is read at the start anyway.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from edge_agent.service.heap import tune_heap

    tune_heap()  # before any thread allocates: docs/performance.md §2c
    from edge_agent.common.logs import configure_logging
    from edge_agent.config.diagnostics import format_diagnostic
    from edge_agent.config.models import Storage
    from edge_agent.service.isolated_load import check_isolated
    from edge_agent.service.pipeline import AgentError

    site_path: Path = args.site.resolve()
    fallback: str | None = None
    if site_path.is_file():
        # Checked in a child process: the loader's peak memory never stays in the agent.
        config, diagnostics, watched = check_isolated(site_path)
        problem = f"{site_path.name} has {sum(1 for d in diagnostics if d.is_error)} error(s)"
        site_errors = [format_diagnostic(d) for d in diagnostics if d.is_error]
    else:
        # A missing file (a failed mount, a config-management hiccup) is a broken file too:
        # the last good configuration runs until it is back.
        missing = f"{site_path}: error: (top): no such site file"
        print_error(missing)
        config, diagnostics, watched = None, [], [site_path]
        problem = f"{site_path.name} is missing"
        site_errors = [missing]
    if config is None:
        for diagnostic in diagnostics:
            print_error(format_diagnostic(diagnostic), _level(diagnostic))
        # The state folder of a file that does not load: the one systemd names, else the
        # default (a broken file's own ``storage.path`` cannot be trusted).
        state_dir = (args.state_dir or Path(Storage().path)).resolve()
        try:
            config, fallback = _last_good(state_dir, problem)
        except NewerFormatError as exc:
            print_error(f"edge-agent: {exc}")
            return EXIT_NEWER_STATE
        if config is None:
            return 2
    configure_logging(config.logging.level, args.log_format or config.logging.format)
    log = logging.getLogger("edge_agent.run")
    if fallback is not None:
        for diagnostic in diagnostics:
            if diagnostic.is_error:
                log.error(format_diagnostic(diagnostic), extra={"event": "site_file_invalid"})
        log.error(
            "The site file is invalid or missing; running the last good configuration until "
            "it is fixed.",
            extra={"site_file": str(site_path), "why": fallback},
        )
    else:
        for diagnostic in diagnostics:
            log.warning(format_diagnostic(diagnostic))
    from edge_agent.config.state_dir import state_dir_of, state_left_behind

    if args.state_dir is not None:
        state_dir = args.state_dir.resolve()
    else:
        state_dir = state_dir_of(config, site_path).resolve()
        left_behind = state_left_behind(config, site_path)
        if left_behind is not None:
            log.error(
                "storage.path is relative to the site file's folder; the state folder at the "
                "same path under the working directory is not used. Move it if it holds the "
                "outbox you want (stop the agent first).",
                extra={"used": str(state_dir), "not_used": str(left_behind.absolute())},
            )

    from edge_agent.common.health import HealthError
    from edge_agent.service.app import Service
    from edge_agent.service.state_lock import StateFolderInUse, lock_state_folder

    try:
        # Held until the process exits: released by the kernel however it ends.
        lock = lock_state_folder(state_dir)
    except StateFolderInUse as exc:
        log.error("The agent could not start.", extra={"error": str(exc)})
        return 1
    except OSError as exc:
        log.error(
            "The agent could not start: the state folder is not usable.",
            extra={"path": str(state_dir), "error": exc.strerror or str(exc)},
        )
        return 1

    async def main() -> int:
        service = Service(
            site_path,
            config,
            state_dir,
            watched_files=watched,
            fallback=fallback,
            site_errors=site_errors,
        )
        return await service.run()

    try:
        return asyncio.run(main())
    except (AgentError, HealthError) as exc:
        log.error("The agent could not start.", extra={"error": str(exc)})
        return 1
    except NewerFormatError as exc:
        log.error(
            "The agent could not start: its state was written by a later release.",
            extra={"error": str(exc), "exit_code": EXIT_NEWER_STATE},
        )
        return EXIT_NEWER_STATE
    finally:
        lock.release()


def _last_good(state_dir: Path, problem: str) -> tuple[SiteConfig | None, str | None]:
    """The last good configuration and the readiness reason for running it, or (None, None)
    with the reason printed."""
    from edge_agent.service.last_good import last_good_path, load_last_good, saved_at

    config, problems = load_last_good(state_dir)
    if config is None:
        if problems:
            from edge_agent.config.diagnostics import format_diagnostic

            for unusable in problems:
                if unusable.is_error:
                    print_error(format_diagnostic(unusable))
            print_error(f"{last_good_path(state_dir)}: the last good configuration is unusable too")
        return None, None
    return config, (
        f"running the last good configuration (saved {saved_at(state_dir)}): "
        f"{problem}; fix it and it is applied at once"
    )


def _level(diagnostic: Diagnostic) -> int:
    return logging.ERROR if diagnostic.is_error else logging.WARNING
