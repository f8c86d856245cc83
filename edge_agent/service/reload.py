"""Hot reload: notice a changed site file (or SIGHUP), validate it, swap it in or keep the old.

Files are watched by polling their content hash once a second: no dependency, works on
every filesystem (inotify misses edits on some network mounts and bind mounts), and an
editor's save-by-rename is seen as a change like any other.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.config.diagnostics import Diagnostic, format_diagnostic
from edge_agent.config.models import SiteConfig

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 1.0
_INCLUDE_RE = re.compile(r"\binclude['\"]?\s*:")

Validate = Callable[[Path], Awaitable[tuple[SiteConfig | None, list[Diagnostic], list[Path]]]]
"""Site file → (config or None, diagnostics, every file it was read from)."""
Apply = Callable[[SiteConfig, bool], Awaitable[list[str]]]
"""(new config, reload credentials?) → what changed."""


@dataclass
class ReloadReport:
    """The last reload and the running totals (health and metrics read these)."""

    outcomes: dict[str, int] = field(default_factory=lambda: {"applied": 0, "rejected": 0})
    last_outcome: str | None = None
    last_time_ns: int = 0
    last_changes: list[str] = field(default_factory=list)
    # The errors of the last rejected reload, formatted exactly as `edge-agent validate`.
    errors: list[str] = field(default_factory=list)
    # Set while the agent runs its last good configuration because the site file is
    # invalid (see :mod:`edge_agent.service.last_good`): the readiness reason. The first
    # reload that applies the site file clears it.
    fallback: str | None = None


def fingerprint(paths: Sequence[Path]) -> dict[Path, str | None]:
    """Content hash per file (None when missing or unreadable)."""
    prints: dict[Path, str | None] = {}
    for path in paths:
        try:
            prints[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            prints[path] = None
    return prints


def site_files(site_path: Path) -> list[Path]:
    """The site file and every file it includes (recursively), as far as they parse.

    Only the ``include:`` key is read here; a file that does not parse is still watched
    (its next save is the next reload attempt) and the loader reports its errors."""
    from edge_agent.config.diagnostics import ConfigError

    found: list[Path] = []
    pending = [site_path]
    while pending and len(found) < 1000:
        path = pending.pop(0)
        if path in found:
            continue
        found.append(path)
        try:
            text = path.read_text(encoding="utf-8")
            # Parsing a big site file only to find it has no includes costs seconds.
            if not _INCLUDE_RE.search(text):
                continue
            # The loader's own reader: the C parser when it reads the text exactly. Imported
            # only here: a big site checked in the child never needs ruamel in the agent.
            from edge_agent.config.yaml_reader import parse_yaml

            document, _marks, _problems = parse_yaml(text, str(path))
        except (OSError, ConfigError, UnicodeDecodeError):
            continue
        includes = document.get("include") if isinstance(document, dict) else None
        if isinstance(includes, str):
            includes = [includes]
        for entry in includes if isinstance(includes, list) else []:
            if not isinstance(entry, str):
                continue
            if any(ch in entry for ch in "*?["):
                pending.extend(sorted(path.parent.glob(entry)))
            else:
                pending.append(path.parent / entry)
    return found


async def default_validate(
    site_path: Path,
) -> tuple[SiteConfig | None, list[Diagnostic], list[Path]]:
    """Check the site file with the same code as ``edge-agent validate``, in a child
    process (see :mod:`edge_agent.service.isolated_load`)."""
    from edge_agent.service.isolated_load import check_isolated_async

    return await check_isolated_async(site_path)


class Reloader:
    """Validates and applies a changed site file; one reload at a time."""

    def __init__(
        self,
        site_path: Path,
        apply: Apply,
        validate: Validate = default_validate,
        on_reloading: Callable[[], object] | None = None,
        on_done: Callable[[], object] | None = None,
    ) -> None:
        self.site_path = site_path
        self.report = ReloadReport()
        self._apply = apply
        self._validate = validate
        self._on_reloading = on_reloading
        self._on_done = on_done
        self._lock = asyncio.Lock()
        self._watched: dict[Path, str | None] = {}

    def watch_files(self, paths: Sequence[Path]) -> None:
        """Remember the current content of ``paths`` (the site file and its includes)."""
        self._watched = fingerprint(list(dict.fromkeys([self.site_path, *paths])))

    def changed(self) -> bool:
        return bool(self._watched) and fingerprint(list(self._watched)) != self._watched

    async def reload(self, reason: str, reload_credentials: bool = False) -> bool:
        """Validate the site file; apply it if valid (True), keep the old one if not."""
        async with self._lock:
            if self._on_reloading is not None:
                self._on_reloading()
            try:
                return await self._reload(reason, reload_credentials)
            finally:
                if self._on_done is not None:
                    self._on_done()

    async def _reload(self, reason: str, reload_credentials: bool) -> bool:
        report = self.report
        report.last_time_ns = time.time_ns()
        try:
            config, diagnostics, files = await self._validate(self.site_path)
        except Exception as exc:
            # Never let a loader bug take down a running agent: report and keep going.
            log.exception("Reload failed while reading the site file.")
            config, diagnostics, files = None, [], []
            report.errors = [f"{self.site_path}: error: (top): {exc}"]
        else:
            report.errors = [format_diagnostic(d) for d in diagnostics if d.is_error]
        # Watch what was read this time, valid or not: the next save is a new attempt.
        self.watch_files(files)
        if config is None or report.errors:
            report.outcomes["rejected"] += 1
            report.last_outcome = "rejected"
            report.last_changes = []
            if not report.errors:
                report.errors = [f"{self.site_path}: error: (top): the site file was not loaded"]
            for line in report.errors:
                log.error(line, extra={"event": "reload_rejected", "reason": reason})
            log.error(
                "Reload rejected; the previous configuration keeps running.",
                extra={"errors": len(report.errors), "reason": reason},
            )
            return False
        for diagnostic in diagnostics:
            log.warning(format_diagnostic(diagnostic), extra={"event": "reload_warning"})
        try:
            changes = await self._apply(config, reload_credentials)
        except Exception as exc:
            log.exception("Applying the new configuration failed.")
            report.outcomes["rejected"] += 1
            report.last_outcome = "rejected"
            report.errors = [f"{self.site_path}: error: (top): could not apply: {exc}"]
            return False
        report.outcomes["applied"] += 1
        report.last_outcome = "applied"
        report.last_changes = changes
        log.info("Configuration reloaded.", extra={"reason": reason, "changes": changes})
        if report.fallback is not None:
            report.fallback = None
            log.warning("The site file is valid again; the last good configuration is retired.")
        return True

    async def watch(self) -> None:
        """Poll the watched files until cancelled; reload when one changes."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if await asyncio.to_thread(self.changed):
                await self.reload("file changed")
