"""The running agent: sources → rule engine → outbox → forwarder as named asyncio tasks.

::

    source:plc1 ─┐                      (bounded queue: a full queue makes the sources wait)
    source:ua1  ─┼─► readings ─► rules ─► outbox (disk) ◄─ forwarder ─► hub / MaintainX
    clock tick  ─┘      (ticks drive on/off delays and staleness inside the "rules" task)

The rules run on the agent's monotonic clock (``agent_clock``): a batch is stamped when it
reaches the agent and the engine is ticked with the same clock; a source's timestamp is
checked for plausibility and reported, never used for a deadline. Alert messages get
wall-clock times when they are made.

The outbox is the only buffer that grows: a slow or absent forwarder never makes the agent
drop readings or hold more than ``rules_loop.READINGS_QUEUE_BATCHES`` poll batches in memory. A full
outbox (cap or disk) never stops the rules: their alert messages wait in a bounded, ordered
hold (:mod:`edge_agent.service.held_alerts`) while polling and evaluation go on.

The modules: :mod:`.wiring` builds the stages, :mod:`.rules_loop` is the rules task,
:mod:`.handover` makes alert messages durable with the rule state and hands them to the
outbox; this one starts, reloads and stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from edge_agent.config.models import SiteConfig
from edge_agent.history.recorder import HistoryRecorder
from edge_agent.interfaces import Forwarder, Source
from edge_agent.readings import Reading
from edge_agent.service.agent_clock import SourceTimeCheck, WallClockCheck
from edge_agent.service.alarm_controls import AlarmControls
from edge_agent.service.config_changes import connection_changes, rule_and_asset_changes
from edge_agent.service.config_reuse import adopt_unchanged
from edge_agent.service.control_socket import ControlSocket, socket_path
from edge_agent.service.handover import OutboxHandover, PipelineCounters
from edge_agent.service.held_alerts import AlertHold
from edge_agent.service.mqtt_commands import MqttCommands
from edge_agent.service.plant import PlantData, wants_plant_data
from edge_agent.service.retired_counters import RetiredCounters
from edge_agent.service.rules_loop import RulesLoop
from edge_agent.service.supervisor import Supervisor
from edge_agent.service.tasks import wait_done
from edge_agent.service.wiring import (
    AgentError,
    build_delivery,
    hand_work_orders_to_rules,
    open_state,
    source_signature,
)

if TYPE_CHECKING:
    from edge_agent.forwarders.workorder_status import WorkOrderTracker
    from edge_agent.outbox.store import Outbox, OutboxStats
    from edge_agent.rules import AlarmEvent, RuleEngine, RuleStateStore

__all__ = ["SHUTDOWN_BUDGET_S", "Agent", "AgentError", "PipelineCounters", "source_signature"]

log = logging.getLogger(__name__)

SHUTDOWN_BUDGET_S: Final = 8.0
"""SIGTERM to exit: systemd's default stop timeout is longer, the contract is 10 s."""


class Agent:
    """One site's agent. ``await start()``, then ``await run_until(stop_event)``.

    ``base_dir`` is the site file's folder (relative secret files); ``state_dir`` holds the
    outbox, dead letters, the alert → work order map and the rule state. Every stage task
    is started through ``supervisor`` (see :mod:`edge_agent.service.supervisor`).
    """

    def __init__(
        self,
        config: SiteConfig,
        base_dir: Path,
        state_dir: Path,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.config = config
        self.supervisor = supervisor if supervisor is not None else Supervisor()
        self.base_dir = base_dir
        self.state_dir = state_dir
        self.counters = PipelineCounters()
        # The counts of sources and forwarders a reload replaced (counters never go down).
        self.retired = RetiredCounters()
        self.started_ns = time.time_ns()
        self.stopping = False
        self.handover = OutboxHandover(
            self.counters, config.storage.max_held_alerts, self._wake_forwarder
        )
        # Recent readings on disk (history:); its settings take effect at a restart.
        self.history = (
            HistoryRecorder(state_dir, config.history) if config.history.enabled else None
        )
        self.rules = RulesLoop(config, self.counters, self.handover, self.history)
        # A person's alarm commands: the control socket and (MQTT mode) the hub's topic.
        self.controls = AlarmControls(state_dir, self.rules, lambda: self.config)
        self.control_socket = ControlSocket(socket_path(state_dir), self._control_request)
        self._control_task: asyncio.Task[None] | None = None
        self.mqtt_commands: MqttCommands | None = None
        self._sources: dict[str, Source] = {}
        self._source_tasks: dict[str, asyncio.Task[None]] = {}
        self._rules_task: asyncio.Task[None] | None = None
        self._forwarder_task: asyncio.Task[None] | None = None
        self._forwarder: Forwarder | None = None
        self._apply_lock = asyncio.Lock()
        self._history_task: asyncio.Task[None] | None = None
        self.outbox: Outbox | None = None
        self.engine: RuleEngine | None = None
        self.rule_store: RuleStateStore | None = None
        # Meters and asset downtime with their own outbox (issue 14), when configured.
        self.plant: PlantData | None = None
        # Why the meters did not start (their outbox would not open), said in /readyz.
        self.plant_failed: str | None = None

    # What health, metrics and the demo read: kept by the rules loop and the handover.

    @property
    def latest(self) -> dict[str, Reading]:
        return self.rules.latest

    @property
    def recent_events(self) -> deque[AlarmEvent]:
        return self.rules.recent_events

    @property
    def source_times(self) -> SourceTimeCheck:
        return self.rules.source_times

    @property
    def wall_clock(self) -> WallClockCheck | None:
        return self.rules.wall_clock

    @property
    def work_orders(self) -> WorkOrderTracker | None:
        return self.rules.work_orders

    @property
    def hold(self) -> AlertHold:
        return self.handover.hold

    @property
    def holding_alerts(self) -> int:
        return self.handover.holding_alerts

    @property
    def outbox_write_error(self) -> str | None:
        return self.handover.outbox_write_error

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the state, build every stage and start their tasks. No network I/O is
        awaited here: sources and forwarder connect (and retry) in their own tasks."""
        state = await open_state(self.config, self.state_dir)
        self.outbox, self.rule_store, self.engine = state.outbox, state.rule_store, state.engine
        self.handover.attach(state.outbox, state.rule_store, state.engine)
        self.rules.engine = state.engine
        wall_clock = WallClockCheck(self.rule_store.saved_wall_ns)
        wall_clock.poll()
        self.rules.wall_clock = wall_clock
        self._rules_task = self.supervisor.start(self.rules.run(), "rules")
        self._control_task = self.supervisor.start(self.control_socket.run(), "control-socket")
        if self.history is not None:
            self._history_task = self.supervisor.start(self.history.run(), "history")
        self._start_forwarder()
        await self._start_plant(self.config)
        from edge_agent.sources import build_sources

        for source in build_sources(self.config, self.base_dir):
            self._start_source(source)
        log.info(
            "Agent started.",
            extra={
                "site": self.config.site.id,
                "connections": sorted(self._sources),
                "rules": len(self.config.rules),
                "state_dir": str(self.state_dir),
            },
        )

    async def stop(self) -> None:
        """Stop polling, let the rules finish what is queued, save rule state, stop the
        forwarder (leased items go back to the outbox) and close the outbox."""
        self.stopping = True
        self.supervisor.shutdown()  # every task ends from here on, as asked
        if self._control_task is not None:
            await self.supervisor.stop(self._control_task, 3.0)
        if self.mqtt_commands is not None:
            await self.mqtt_commands.close()
        for name in list(self._source_tasks):
            await self._stop_source(name)
        if self._rules_task is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self.rules.queue.put_nowait(None)
            if not await wait_done(self._rules_task, 3.0):
                log.warning("Rules did not drain in time; cancelling.")
                await self.supervisor.stop(self._rules_task, 3.0)
        if self._history_task is not None:
            await self.supervisor.stop(self._history_task, 3.0)  # writes what it holds
        # Always written at a stop: after a task failure the restart continues from here.
        try:
            self.handover.save_rule_state(force=True)
        except Exception:
            # The error that ended the rules task may be the one that fails the save (a
            # bug): the stop goes on, so the outbox still closes and the exit status says it.
            self.counters.state_save_errors += 1
            log.exception("Saving the rule state at stop failed.")
        else:
            if self.rule_store is not None and self.engine is not None and not self.engine.dirty:
                log.info("Rule state saved.", extra={"path": str(self.rule_store.path)})
        await self._stop_forwarder()
        if self.plant is not None:
            await self.plant.stop()
        if self.outbox is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.outbox.close)
        log.info("Agent stopped.", extra={"site": self.config.site.id})

    def task_failures(self) -> list[str]:
        """Names of tasks that ended on their own (they should run until stopped)."""
        return [failure.task for failure in self.supervisor.failures]

    def clock_problems(self) -> list[str]:
        """``/readyz`` reasons about the wall clock (alarm timing never depends on it)."""
        reason = self.wall_clock.reason if self.wall_clock is not None else None
        return [] if reason is None else [reason]

    # ------------------------------------------------------------------ stages

    @property
    def sources(self) -> dict[str, Source]:
        return dict(self._sources)

    @property
    def forwarder(self) -> Forwarder | None:
        return self._forwarder

    def _start_source(self, source: Source) -> None:
        self._sources[source.name] = source
        # A source must not end or raise for I/O; if it does anyway, it is a bug and the
        # supervisor ends the process so that a fresh one starts polling again.
        self._source_tasks[source.name] = self.supervisor.start(
            source.run(self.rules.sink), f"source:{source.name}"
        )

    async def _stop_source(self, name: str) -> None:
        task = self._source_tasks.pop(name, None)
        # Still listed while it stops: its counters leave the metrics only in the same step
        # that adds them to the retired ones (a scrape in between saw them go down).
        source = self._sources.get(name)
        if task is not None:
            await self.supervisor.stop(task, 3.0)
        if source is not None:
            try:
                async with asyncio.timeout(3.0):
                    await source.close()
            except Exception as exc:
                log.warning(
                    "Source did not close cleanly.",
                    extra={"connection": name, "error": repr(exc)},
                )
            self.retired.retire_source(name, source.stats)
            if self._sources.get(name) is source:
                del self._sources[name]

    def _start_forwarder(self) -> None:
        if self.outbox is None:
            raise AgentError("the forwarder is started before the outbox is open")
        delivery = build_delivery(self.config, self.outbox, self.state_dir, self.base_dir)
        if delivery.work_orders is not None:
            # Kept when a reload leaves MQTT mode, as it always was.
            self.rules.work_orders = delivery.work_orders
            hand_work_orders_to_rules(delivery.work_orders, self.rules)
        self._forwarder = delivery.forwarder
        self._listen_for_commands(self._forwarder)
        if self._forwarder is not None:
            self._forwarder_task = self.supervisor.start(self._forwarder.run(), "forwarder")

    async def _start_plant(self, config: SiteConfig) -> None:
        """The meters, their outbox and forwarder, once the site file has any."""
        if self.plant is not None or not wants_plant_data(config):
            return
        plant = PlantData(
            config, self.state_dir, self.base_dir, self.supervisor, self.rules.work_orders
        )
        try:
            await plant.start()
        except Exception as exc:  # the outbox could not open: alarms still run
            log.error("Meters not started.", extra={"error": repr(exc)})
            self.plant_failed = f"meters and downtime not started: {exc}"
            return
        self.plant_failed = None
        self.plant = plant
        self.rules.plant = plant

    async def _apply_plant(self, new: SiteConfig, reload_credentials: bool) -> list[str]:
        if self.plant is None:
            await self._start_plant(new)
            return ["meters"] if self.plant is not None else []
        changes = await self.plant.apply(new)
        if reload_credentials and "plant forwarder" not in changes:
            self.plant.reload_credentials()
        return changes

    def _listen_for_commands(self, forwarder: Forwarder | None) -> None:
        """MQTT mode: the hub's alarm commands arrive on the forwarder's connection."""
        forwarding = self.config.forwarding
        if forwarder is None or forwarding is None or forwarding.mqtt is None:
            return
        from edge_agent.forwarders.mqtt import MqttForwarder

        if not isinstance(forwarder, MqttForwarder):
            return
        commands = MqttCommands(self.controls, forwarding.mqtt.topic_prefix, self.config.site.id)
        self.mqtt_commands = commands
        commands.attach(forwarder)

    async def _control_request(self, line: bytes, peer: str | None) -> dict[str, Any]:
        return await self.controls.handle(line, "socket", peer)

    def _wake_forwarder(self) -> None:
        # The forwarder idles between outbox polls: a new alert goes out now.
        if self._forwarder is not None:
            self._forwarder.wake()

    async def _stop_forwarder(self) -> None:
        task, self._forwarder_task = self._forwarder_task, None
        # Still in place while it stops: see _stop_source (counters never go down).
        forwarder = self._forwarder
        if task is not None:
            await self.supervisor.stop(task, 3.0)
        if forwarder is not None:
            try:
                async with asyncio.timeout(3.0):
                    await forwarder.close()
            except Exception as exc:
                log.warning("Forwarder did not close cleanly.", extra={"error": repr(exc)})
            self.retired.retire_forwarder(forwarder.status)
            if self._forwarder is forwarder:
                self._forwarder = None

    # ------------------------------------------------------------------ reload

    async def apply_config(self, new: SiteConfig, reload_credentials: bool = False) -> list[str]:
        """Swap in a validated configuration without restarting; returns what changed.

        Rules: the engine keeps the state of every unchanged rule and every open episode.
        Sources: only connections whose settings or sensors changed are restarted.
        Forwarder: rebuilt if ``forwarding`` changed; otherwise its credentials are re-read
        when ``reload_credentials`` (SIGHUP) asks for it.
        """
        async with self._apply_lock:
            old = self.config
            changes: list[str] = []
            engine = self.engine
            if engine is None:
                raise AgentError("a configuration is applied before the agent started")
            # First: the new file's duplicates of unchanged sections go before anything
            # else is allocated, and the stages below see "unchanged" by identity.
            adopt_unchanged(old, new)
            engine.reconfigure(new)
            self.rules.config = new
            self.source_times.skew_ns = new.defaults.source_time_skew
            # A faulted rule stays faulted until a reload changes (or removes) it.
            kept = {rule.id: rule for rule in new.rules}
            engine.faults.forget({r.id for r in old.rules if kept.get(r.id) != r})
            changes += rule_and_asset_changes(old, new)
            self.config = new
            stale = [
                name
                for name in self._sources
                if name not in new.connections
                or source_signature(old, name) != source_signature(new, name)
            ]
            for name in stale:
                await self._stop_source(name)
            changes += connection_changes(old, new, stale)
            missing = [name for name in new.connections if name not in self._sources]
            if missing:
                from edge_agent.sources import build_sources

                # Only the missing connections' sources: building every one to keep a few
                # made a whole plan of each kept source (10,000 sensors) for nothing.
                only = new.model_copy(
                    update={"connections": {n: new.connections[n] for n in missing}}
                )
                for source in build_sources(only, self.base_dir):
                    self._start_source(source)
            if reload_credentials:
                # Sources with certificate files look at them now (rotation on SIGHUP).
                for source in self._sources.values():
                    source.reload_credentials()
            if old.forwarding != new.forwarding:
                await self._stop_forwarder()
                self._start_forwarder()
                changes.append("forwarder")
            elif reload_credentials and self._forwarder is not None:
                self._forwarder.reload_credentials()
            changes += await self._apply_plant(new, reload_credentials)
            restart_only = (
                ("storage", old.storage != new.storage),
                ("health", old.health != new.health),
                ("logging", old.logging != new.logging),
            )
            for section, changed in restart_only:
                if changed:
                    log.warning("This section changes only on restart.", extra={"section": section})
            self.handover.save_rule_state()
            return changes

    # ------------------------------------------------------------------ health

    def outbox_stats(self) -> OutboxStats | None:
        return self.outbox.stats() if self.outbox is not None else None
