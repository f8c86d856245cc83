"""The last good configuration: what the agent runs when its site file is broken.

A bad edit must never take the plant down. Every configuration the agent starts with or
applies on reload is saved in the state folder (``last-good-site.json``: the site file and
its includes merged into one document, with defaults left out and secret *references* kept
as written; a secret value is never in the site file, so none is here). When ``run`` finds the
site file invalid, it starts on this copy, loudly (a ``/readyz`` reason, an error line each
minute, ``edge_agent_config_fallback`` = 1), and the reload watcher keeps watching the real
site file: the first valid save is applied and ends the fallback. Without a saved copy,
``run`` exits with the config-error status, which the systemd unit does not restart.

The copy is read with the same checks as any site file (JSON is YAML), so a tampered or
truncated copy is refused like a broken site file, never half-used. Its schema version is the
site file's ``version:`` (the first key we write); a later release's copy is refused with
:class:`~edge_agent.common.schema_version.NewerFormatError` rather than judged as a broken file.
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from edge_agent.common.atomic import write_atomic
from edge_agent.common.schema_version import SchemaVersionError, check
from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.models import SiteConfig, site_json

LAST_GOOD_NAME: Final = "last-good-site.json"
MAX_LAST_GOOD_BYTES: Final = 64 * 1024 * 1024
"""A copy larger than this was not written by the agent: refused unread."""
SITE_FORMAT_VERSION: Final = 1
"""The site file format this release reads (``SiteConfig.version``)."""
_VERSION_HEAD: Final = re.compile(rb'\A\{\s*"version":\s*(\d{1,9})\b')
NAG_INTERVAL_S: Final = 60.0
"""How often the running fallback says so in the log."""


def last_good_path(state_dir: Path) -> Path:
    return state_dir / LAST_GOOD_NAME


def save_last_good(state_dir: Path, config: SiteConfig) -> None:
    """Write ``config`` as the last good configuration: atomically (a crash leaves the old
    copy or the new one, never half of one), mode 0600, no temporary file left behind."""
    path = last_good_path(state_dir)
    # Serialized straight to text: the Python data of a big site would stay resident.
    write_atomic(path, (site_json(config, indent=1) + "\n").encode())


def saved_at(state_dir: Path) -> str | None:
    """When the last good configuration was saved (ISO 8601, UTC), or None if there is none."""
    try:
        mtime = last_good_path(state_dir).stat().st_mtime
    except OSError:
        return None
    return datetime.fromtimestamp(mtime, UTC).isoformat(timespec="seconds")


def load_last_good(state_dir: Path) -> tuple[SiteConfig | None, list[Diagnostic]]:
    """The saved configuration, checked like a site file: (config or None, diagnostics).
    (None, []) when there is no copy at all."""
    from edge_agent.service.isolated_load import check_isolated

    path = last_good_path(state_dir)
    try:
        info = path.stat()
    except FileNotFoundError:
        return None, []
    except OSError as exc:
        # Said by `run` before its logging is set up: a diagnostic it prints, with the path.
        return None, [_refused(path, f"cannot be read: {exc.strerror or exc}")]
    if not path.is_file() or info.st_size > MAX_LAST_GOOD_BYTES:
        return None, [
            _refused(path, f"not a regular file of a plausible size ({info.st_size} bytes)")
        ]
    _check_version(path)
    config, diagnostics, _files = check_isolated(path)
    return config, diagnostics


def _refused(path: Path, why: str) -> Diagnostic:
    return Diagnostic(str(path), 1, 1, "error", (), f"last good configuration refused: {why}")


def _check_version(path: Path) -> None:
    """Raise NewerFormatError for a copy a later release wrote (found in the first bytes:
    our writer puts ``version`` first; anything else is left to the site file checks)."""
    try:
        with path.open("rb") as file:
            head = file.read(256)
    except OSError:
        return  # the full read reports it
    match = _VERSION_HEAD.match(head)
    if match is not None:
        with contextlib.suppress(SchemaVersionError):  # 0 or the like: a broken file
            check("last good configuration", str(path), int(match[1]), SITE_FORMAT_VERSION)
