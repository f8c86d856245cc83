"""The service around the agent: signals, hot reload, health, metrics and systemd.

``Service.run()`` is what ``edge-agent run`` awaits:

1. start the health server (``/healthz`` answers from the first second),
2. start the agent's stages, tell systemd ``READY=1``, ping its watchdog,
3. on SIGHUP or a changed site file: ``RELOADING=1``, validate, swap or keep, ``READY=1``,
4. on SIGTERM/SIGINT: ``STOPPING=1``, stop polling, drain, save, exit within 10 s;
5. when any task ends on its own (see :mod:`edge_agent.service.supervisor`): ``/healthz``
   fails and the watchdog pings stop at once, then the same orderly stop (the rule state
   is saved) and exit status :data:`EXIT_TASK_FAILED`, for systemd or Docker to restart us.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_agent.alerts import format_time_ns
from edge_agent.common.health import HealthServer
from edge_agent.config.models import SiteConfig
from edge_agent.interfaces import ForwarderStatus
from edge_agent.service.alarm_controls import controls_health
from edge_agent.service.config_changes import credentials_fingerprint
from edge_agent.service.heap import release_free_heap
from edge_agent.service.last_good import NAG_INTERVAL_S, save_last_good
from edge_agent.service.metrics import as_mapping, build_registry
from edge_agent.service.pipeline import SHUTDOWN_BUDGET_S, Agent
from edge_agent.service.reload import Reloader, Validate, default_validate
from edge_agent.service.sdnotify import SystemdNotifier
from edge_agent.service.secret_scan import environment_secrets, register_config_secrets
from edge_agent.service.supervisor import EXIT_TASK_FAILED, Supervisor
from edge_agent.sources.opcua.expiry import expiry_warning

log = logging.getLogger(__name__)

OUTBOX_REFUSING = "outbox refusing new events (disk full or cap reached)"
"""The readiness reason while the outbox refuses puts: a full disk refuses them well below
the byte cap, so the outbox's own ``refusing`` flag says it, not ``bytes >= cap``."""


class Service:
    """One agent plus everything that makes it a well-behaved daemon."""

    def __init__(
        self,
        site_path: Path,
        config: SiteConfig,
        state_dir: Path,
        watched_files: Sequence[Path] = (),
        notifier: SystemdNotifier | None = None,
        validate: Validate = default_validate,
        fallback: str | None = None,
        site_errors: Sequence[str] = (),
    ) -> None:
        """``fallback``: why ``config`` is the last good configuration instead of the site
        file's (None when it is the site file's own); ``site_errors``: then, the site file's
        errors as ``edge-agent validate`` prints them."""
        self.site_path = site_path
        self.base_dir = site_path.parent
        self.notifier = notifier or SystemdNotifier()
        self.supervisor = Supervisor()
        self.agent = Agent(config, self.base_dir, state_dir, self.supervisor)
        self.reloader = Reloader(
            site_path,
            self._apply,
            validate=validate,
            on_reloading=self.notifier.reloading,
            on_done=lambda: self.notifier.ready("running"),
        )
        self.reloader.watch_files(list(watched_files))
        self.reloader.report.fallback = fallback
        if fallback is not None:
            # The site file on disk was refused at start as a reload would refuse it: its
            # errors show in /healthz, /readyz and edge_agent_config_errors until it is fixed.
            self.reloader.report.last_outcome = "rejected"
            self.reloader.report.errors = list(site_errors) or [f"{site_path}: error: (top)"]
        self.registry = build_registry(self.agent, self.reloader.report)
        self.health = HealthServer(config.health.listen, self, self.registry)
        self.stop_event = asyncio.Event()
        self.ready_event = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        # A SIGHUP while starting: done once the agent runs (nothing to apply it to yet).
        self._reload_when_started = False
        # The secrets and certificate files as last loaded: a SIGHUP says "credentials"
        # only when they changed.
        self._credentials = ""

    # ------------------------------------------------------------------ run

    async def start(self) -> None:
        """Start health, the agent and the background tasks; systemd hears READY=1."""
        register_config_secrets(self.agent.config, self.base_dir)
        self._credentials = credentials_fingerprint(self.agent.config, self.base_dir)
        await self.health.start()
        try:
            await self.agent.start()
        except BaseException:
            await self.health.close()
            raise
        self._tasks = [
            self.supervisor.start(self.reloader.watch(), "reload-watch"),
            self.supervisor.start(self._fallback_reminder(), "fallback-reminder"),
        ]
        if self.notifier.watchdog_interval_s is not None and self.notifier.enabled:
            self._tasks.append(
                self.supervisor.start(
                    self.notifier.watchdog_loop(lambda: self.supervisor.alive), "watchdog"
                )
            )
        if self.reloader.report.fallback is None:
            await self._save_last_good(self.agent.config)
        release_free_heap()  # start-up's temporaries are gone: give their pages back
        self.notifier.ready("running")
        self.ready_event.set()
        if self._reload_when_started:
            self._reload_when_started = False
            self._start_reload()

    async def stop(self) -> None:
        """STOPPING=1, then the agent's orderly stop, bounded so the process exits in time."""
        self.notifier.stopping()
        self.supervisor.shutdown()
        for task in self._tasks:
            await self.supervisor.stop(task, 3.0)
        try:
            async with asyncio.timeout(SHUTDOWN_BUDGET_S):
                await self.agent.stop()
        except TimeoutError:
            log.error("Stopping took too long; exiting with work still in the outbox.")
        await self.health.close()

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (exit code 0) or until a task ends unexpectedly
        (:data:`EXIT_TASK_FAILED`)."""
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for signum, handler in (
            (signal.SIGTERM, self.request_stop),
            (signal.SIGINT, self.request_stop),
            (signal.SIGHUP, self.request_reload),
        ):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, handler)
                installed.append(signum)
        try:
            await self.start()
            log.info("Agent ready.", extra={"health": f"{self.health.host}:{self.health.port}"})
            await self._stop_or_failure()
            await self.stop()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
        if self.supervisor.failures:
            log.critical(
                "Agent exits after a task ended unexpectedly.",
                extra={
                    "tasks": [failure.task for failure in self.supervisor.failures],
                    "exit_code": EXIT_TASK_FAILED,
                },
            )
            return EXIT_TASK_FAILED
        return 0

    async def _stop_or_failure(self) -> None:
        """Wait for a stop request or for the first task to end on its own."""
        failed = self.supervisor.failed
        waiters = {
            asyncio.create_task(self.stop_event.wait(), name="wait-stop"),
            asyncio.create_task(failed.wait(), name="wait-failure"),
        }
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.wait(waiters)
        if failed.is_set():
            self.notifier.status("a task ended unexpectedly; exiting to be restarted")
        else:
            log.info("Stop requested.")

    def request_stop(self) -> None:
        self.stop_event.set()

    def request_reload(self) -> None:
        """SIGHUP: re-read the site file and the secrets. One that arrives while the agent
        is starting is done as soon as it runs (the files may have changed since they were
        read), not refused."""
        if not self.ready_event.is_set():
            if not self._reload_when_started:
                log.info("Reload requested while starting: done once the agent runs.")
            self._reload_when_started = True
            return
        self._start_reload()

    def _start_reload(self) -> None:
        task = self.supervisor.start(
            self.reloader.reload("SIGHUP", reload_credentials=True), "reload", one_shot=True
        )
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(task)

    async def _apply(self, config: SiteConfig, reload_credentials: bool) -> list[str]:
        register_config_secrets(config, self.base_dir)
        from_environment = environment_secrets(config) if reload_credentials else []
        if from_environment:
            log.info(
                "Secrets from the environment keep their start-up value; restart to change them "
                "(file: secrets are re-read now).",
                extra={"references": from_environment},
            )
        credentials = await asyncio.to_thread(credentials_fingerprint, config, self.base_dir)
        changes = await self.agent.apply_config(config, reload_credentials)
        if reload_credentials and credentials != self._credentials:
            self._credentials = credentials
            changes.append("credentials")
        await self._save_last_good(config)
        release_free_heap()  # the previous configuration and the reload's temporaries
        return changes

    async def _save_last_good(self, config: SiteConfig) -> None:
        """Keep ``config`` as the one to run if a later edit breaks the site file. A failure
        costs only that safety net: logged, never fatal."""
        try:
            await asyncio.to_thread(save_last_good, self.agent.state_dir, config)
        except OSError as exc:
            log.error(
                "Last good configuration not saved.",
                extra={"state_dir": str(self.agent.state_dir), "error": str(exc)},
            )

    async def _fallback_reminder(self) -> None:
        """While the last good configuration runs, say so every minute: a broken site file
        must not be forgotten because the plant still runs."""
        while True:
            await asyncio.sleep(NAG_INTERVAL_S)
            report = self.reloader.report
            if report.fallback is not None:
                log.error(
                    "Running the last good configuration; fix the site file.",
                    extra={"site_file": str(self.site_path), "why": report.fallback},
                )

    # ------------------------------------------------------------------ health

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when every source is connected, the forwarder is connected, the outbox
        takes new events (below its cap, disk not full, writes succeed) and no stage task
        has died. The details say why not."""
        reasons: list[str] = []
        agent = self.agent
        if not self.ready_event.is_set():
            reasons.append("starting")
        if agent.stopping:
            reasons.append("stopping")
        sources: dict[str, Any] = {}
        # Works today, fails soon: degraded, not unready.
        certificate_warnings: list[str] = []
        for name, source in sorted(agent.sources.items()):
            stats = source.stats
            sources[name] = {
                "connected": stats.connected,
                "last_error": stats.last_error,
                "refused": stats.refused,
            }
            if not stats.connected:
                reasons.append(f"source {name} is not connected: {stats.last_error or 'no reply'}")
            for which, end_s in sorted(stats.certificate_not_after.items()):
                warning = expiry_warning(which, end_s, time.time())
                if warning is not None:
                    certificate_warnings.append(f"source {name}: {warning}")
        forwarder: dict[str, Any] = {}
        if agent.forwarder is not None:
            status = agent.forwarder.status
            forwarder = {
                "connected": status.connected,
                "credentials_rejected": status.credentials_rejected,
                "holding": status.holding,
                "last_error": status.last_error,
            }
            if status.credentials_rejected:
                reasons.append("forwarder credentials were rejected")
            elif status.holding is not None:
                reasons.append(f"forwarder holds every alert: {status.holding}")
            elif not status.connected and not _untried(agent, status):
                reasons.append(f"forwarder is not connected: {status.last_error or 'no reply'}")
            # Confirmation by the hub (MQTT): presence and what awaits it; the forwarder
            # names its own reasons (no hub online: holding).
            hub = status.hub
            if hub is not None:
                if hub.summary is not None:  # once the forwarder first reported
                    forwarder["hub"] = hub.summary
                forwarder["hub_presence"] = hub.hub_presence
                forwarder["awaiting_hub"] = hub.awaiting_hub
                if hub.summary is not None:
                    forwarder["awaiting_hub_oldest_age_s"] = hub.awaiting_hub_oldest_age_s
                reasons.extend(hub.readiness_reasons)
        outbox, outbox_error = _outbox_status(agent)
        cap = outbox.get("cap_bytes") or agent.config.storage.max_bytes
        full = isinstance(outbox.get("bytes"), int) and outbox["bytes"] >= cap
        if outbox_error is not None:
            reasons.append(f"outbox status unavailable: {outbox_error}")
        if outbox.get("refusing"):
            reasons.append(OUTBOX_REFUSING)
        if outbox.get("damaged"):
            reasons.append(
                f"outbox was damaged and set aside ({', '.join(outbox['damaged'])}); "
                "run 'edge-agent outbox SITE recover'"
            )
        if agent.outbox_write_error is not None:
            reasons.append(
                agent.hold.readiness_reason(agent.holding_alerts, agent.outbox_write_error)
            )
        elif agent.holding_alerts:
            sizes = f"{outbox.get('bytes')} of {cap} bytes"
            reasons.append(agent.hold.readiness_reason(agent.holding_alerts, sizes))
        elif full:
            reasons.append(f"outbox is full ({outbox.get('bytes')} of {cap} bytes)")
        reasons.extend(self.supervisor.reasons())
        faults = agent.engine.faults if agent.engine is not None else None
        if faults is not None:
            reasons.extend(faults.reasons())
        if self.reloader.report.fallback is not None:
            reasons.append(self.reloader.report.fallback)
        reasons.extend(agent.clock_problems())
        discarded = agent.rule_store.discarded if agent.rule_store is not None else None
        if discarded is not None:
            # Until the next start: the operator should look, the agent runs on.
            reasons.append(
                f"rule state was damaged and set aside as {discarded.name}; open episodes may "
                "be raised again"
            )
        dead = _dead_letters(agent, outbox)
        meters = agent.plant.health() if agent.plant is not None else None
        alarms, alarm_warnings = controls_health(agent.controls, agent.control_socket.error)
        details: dict[str, Any] = {
            "meters": meters,
            "ready": not reasons,
            "reasons": reasons,
            "degraded": ([dead["says"]] if dead else [])
            + alarm_warnings
            + certificate_warnings
            + (agent.plant.degraded(meters) if agent.plant is not None and meters else [])
            + ([agent.plant_failed] if agent.plant_failed else []),
            "alarms": alarms,
            "dead_letters": dead,
            "sources": sources,
            "forwarder": forwarder,
            "outbox": {
                key: outbox.get(key) for key in ("depth", "bytes", "dead", "cap_bytes", "refusing")
            },
            "held_alerts": {
                "count": agent.holding_alerts,
                "reason": agent.hold.reason,
                "dropped": agent.hold.dropped,
                "limit": agent.hold.limit,
            },
            "config": self._config_status(),
            "faulted_rules": {
                rule_id: {"stage": fault.stage, "error": fault.error, "count": fault.count}
                for rule_id, fault in sorted((faults.faulted if faults else {}).items())
            },
        }
        return not reasons, details

    def liveness(self) -> dict[str, Any]:
        """The process runs: HTTP 200, ``status`` ``ok`` or ``degraded`` (the outbox
        refuses new events). ``failed`` (HTTP 503) from the moment a task has ended
        unexpectedly, until the process exits."""
        outbox, _ = _outbox_status(self.agent)
        dead = outbox.get("dead")
        # Dead letters need a person; the agent itself runs on.
        status = "degraded" if outbox.get("refusing") or dead else "ok"
        if not self.supervisor.alive:
            status = "failed"
        return {
            "status": status,
            "alive": self.supervisor.alive,
            "failures": self.supervisor.reasons(),
            "outbox_refusing": bool(outbox.get("refusing")),
            "dead_letters": dead if isinstance(dead, int) else None,
            "site": self.agent.config.site.id,
            "uptime_s": round((time.time_ns() - self.agent.started_ns) / 1e9, 3),
            "config": self._config_status(),
        }

    def _config_status(self) -> dict[str, Any]:
        report = self.reloader.report
        return {
            "last_reload": report.last_outcome,
            "reloads": dict(report.outcomes),
            "last_changes": list(report.last_changes),
            "errors": report.errors if report.last_outcome == "rejected" else [],
            "fallback": report.fallback,
        }


def _outbox_status(agent: Agent) -> tuple[dict[str, Any], str | None]:
    """The outbox's stats as a dict, and why they could not be read (a health request must
    answer even when the store cannot)."""
    try:
        return dict(as_mapping(agent.outbox_stats())), None
    except Exception as exc:
        return {}, str(exc) or type(exc).__name__


def _dead_letters(agent: Agent, outbox: dict[str, Any]) -> dict[str, Any] | None:
    """Dead letters are alerts a person must act on (fix the cause, then ``outbox retry``):
    their count, the oldest and why it died, or None when there are none. The agent stays
    ready (it works); ``/readyz`` lists it under ``degraded`` and ``/healthz`` says so."""
    count = outbox.get("dead")
    if not isinstance(count, int) or count <= 0 or agent.outbox is None:
        return None
    error: str | None = None
    try:
        oldest = agent.outbox.oldest_dead_letter()
    except Exception as exc:  # a health request answers even when the store cannot
        oldest, error = None, str(exc) or type(exc).__name__
    view: dict[str, Any] = {"count": count, "oldest": None, "error": error}
    if oldest is not None:
        view["oldest"] = {
            "id": oldest.id,
            "alert_id": oldest.payload.get("alert_id"),
            "rule": oldest.payload.get("rule"),
            "reason": oldest.reason,
            "dead_at": _dead_at_text(oldest.dead_at),
        }
    what = f"; oldest: {oldest.reason}" if oldest is not None else ""
    view["says"] = (
        f"{count} dead letter(s) need a person{what} (fix the cause, then "
        "'edge-agent outbox SITE retry')"
    )
    return view


def _dead_at_text(dead_at: float) -> str | None:
    """RFC 3339 for a dead letter's time; None for a value no date can hold (a tampered
    row must not fail the health request)."""
    try:
        return format_time_ns(int(dead_at * 1e9))
    except (ValueError, OverflowError, OSError, TypeError):
        return None


def _untried(agent: Agent, status: ForwarderStatus) -> bool:
    """A MaintainX forwarder talks to MaintainX only when it has something to send: until
    its first attempt, "not connected" means "not known yet", which is not a reason to be
    unready (a health check should rather say ready wrongly than unready wrongly). An MQTT
    forwarder connects at start, so its flag means what it says."""
    forwarding = agent.config.forwarding
    return (
        forwarding is not None
        and forwarding.mode == "maintainx"
        and status.sent == status.failed == status.dead_lettered == 0
        and status.last_error is None
    )
