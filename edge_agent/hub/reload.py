"""SIGHUP (``systemctl reload``): read the hub file and the key files again, as the agent does.

What changes live: sites added, removed or changed (key reference, organization, location,
rate limit), keys rotated in their ``file:`` references, the ``maintainx`` section and the
log level. What needs a restart (``hub``, ``broker``, ``dedup``, ``webhooks``, ``health``,
``state_dir``) is kept as it runs and named in the log and in ``/readyz``. An invalid hub
file is refused with its errors (as ``edge-agent validate`` prints them) in the log and in
``/readyz``; the running configuration stays. ``${ENV}`` references keep the value the
process started with: the environment of a running process does not change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from edge_agent.common.logs import set_log_level
from edge_agent.config.diagnostics import format_diagnostic
from edge_agent.hub.config import HubConfig, load_hub
from edge_agent.hub.sites import SiteRuntime
from edge_agent.maintainx.client import MaintainXClient

if TYPE_CHECKING:
    from edge_agent.hub.app import Hub

log = logging.getLogger(__name__)

RESTART_SECTIONS: Final = ("hub", "broker", "dedup", "webhooks", "health", "state_dir")
"""Sections a running hub cannot change: a reload keeps them and says a restart is needed."""
RETIRE_GRACE_S: Final = 15.0
"""A replaced client is closed this long after the reload (its requests finish first)."""


@dataclass
class HubReloadReport:
    """The last reload, shown in ``/readyz``."""

    applied: int = 0
    rejected: int = 0
    last_outcome: str | None = None
    last_time_ns: int = 0
    changes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "rejected": self.rejected,
            "last_outcome": self.last_outcome,
            "last_time_ns": self.last_time_ns or None,  # null until the first reload
            "changes": list(self.changes),
            "errors": list(self.errors),
            "restart_needed": list(self.restart_needed),
        }


class HubReloader:
    """Reloads ``hub`` from ``path``; one reload at a time."""

    def __init__(self, hub: Hub, path: Path) -> None:
        self.hub = hub
        self.path = path
        self.report = HubReloadReport()
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()

    async def reload(self, reason: str = "SIGHUP") -> bool:
        """True when the file was valid and applied; False when refused (old config kept)."""
        async with self._lock:
            report = self.report
            report.last_time_ns = time.time_ns()
            try:
                config, diagnostics = await asyncio.to_thread(load_hub, self.path)
            except Exception as exc:  # a loader bug must not end a running hub
                log.exception("Reload failed while reading the hub file.")
                config, diagnostics = None, []
                errors = [f"{self.path}: error: (top): {exc}"]
            else:
                errors = [format_diagnostic(d) for d in diagnostics if d.is_error]
            if config is None or errors:
                report.rejected += 1
                report.last_outcome = "rejected"
                report.changes = []
                report.errors = errors or [f"{self.path}: error: (top): not loaded"]
                for line in report.errors:
                    log.error(line, extra={"event": "reload_rejected", "reason": reason})
                log.error(
                    "Reload rejected; the hub keeps its running configuration.",
                    extra={"errors": len(report.errors), "reason": reason},
                )
                return False
            for diagnostic in diagnostics:
                log.warning(format_diagnostic(diagnostic), extra={"event": "reload_warning"})
            changes, restart = await self._apply(config)
            report.applied += 1
            report.last_outcome = "applied"
            report.changes, report.errors, report.restart_needed = changes, [], restart
            if restart:
                log.warning(
                    "Reload: these sections change only with a restart; kept as running.",
                    extra={"sections": restart},
                )
            log.info("Hub configuration reloaded.", extra={"reason": reason, "changes": changes})
            return True

    async def close(self) -> None:
        """Close the clients still waiting for their grace period now."""
        tasks = list(self._retiring)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _apply(self, new: HubConfig) -> tuple[list[str], list[str]]:
        hub = self.hub
        old = hub.config
        restart = [name for name in RESTART_SECTIONS if getattr(old, name) != getattr(new, name)]
        running = new.model_copy(update={name: getattr(old, name) for name in RESTART_SECTIONS})
        changes: list[str] = []
        checks: list[SiteRuntime] = []
        for site_id in sorted(set(hub.sites) - set(running.sites)):
            hub.key_checks.forget(site_id)
            for client in hub.sites.pop(site_id).clients():
                self._retire(client)
            changes.append(f"site {site_id} removed")
        for site_id, site_config in running.sites.items():
            if site_id not in hub.sites:
                site = SiteRuntime(site_id, site_config, running, hub.base_dir)
                site.open()
                hub.sites[site_id] = site
                changes.append(f"site {site_id} added")
                checks.append(site)
                continue
            site = hub.sites[site_id]
            if site_config != old.sites[site_id] or running.maintainx != old.maintainx:
                for client in site.reconfigure(site_config, running):
                    self._retire(client)
                changes.append(f"site {site_id} changed")
            else:
                rotated = await site.refresh_key()
                if rotated:
                    changes.append(f"site {site_id} key rotated")
            checks.append(site)
        if running.logging.level != old.logging.level:
            set_log_level(running.logging.level)
            changes.append(f"log level {running.logging.level}")
        hub.config = running
        hub.sites_changed()
        hub.key_checks.check(checks)
        return changes, restart

    def _retire(self, client: MaintainXClient) -> None:
        async def close_later() -> None:
            try:
                await asyncio.sleep(RETIRE_GRACE_S)
            finally:
                await client.aclose()

        task = asyncio.create_task(close_later(), name="hub-retire-client")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
