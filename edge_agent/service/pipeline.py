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
drop readings or hold more than ``READINGS_QUEUE_BATCHES`` poll batches in memory. A full
outbox (cap or disk) never stops the rules: their alert messages wait in a bounded, ordered
hold (:mod:`edge_agent.service.held_alerts`) while polling and evaluation go on.

Alarm events are made durable *with* the rule state that produced them: one atomic write of
the state file carries the new state and the alert messages not yet in the outbox
(``pending_messages``); then the messages go into the outbox. A crash between the two finds
them in the state file at start-up and queues them again with the same event and alert ids
(downstream deduplicates those). Saving the state after the outbox instead would reopen the
episode under a new alert id after such a crash: a second work order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from edge_agent.common.atomic import remove_stale_temporaries
from edge_agent.config.models import SiteConfig
from edge_agent.errors import EdgeAgentError
from edge_agent.history.recorder import HistoryRecorder
from edge_agent.interfaces import Forwarder, Source
from edge_agent.readings import Reading
from edge_agent.service import agent_clock
from edge_agent.service.agent_clock import SourceTimeCheck, WallClockCheck
from edge_agent.service.config_changes import connection_changes, rule_and_asset_changes
from edge_agent.service.held_alerts import AlertHold
from edge_agent.service.refusals import RefusedAlerts
from edge_agent.service.retired_counters import RetiredCounters
from edge_agent.service.supervisor import Supervisor
from edge_agent.service.tasks import wait_done

log = logging.getLogger(__name__)

LEDGER_SHARE_OF_CAP: Final = 4
"""The work-order ledger counts against ``storage.max_bytes`` up to 1/4 of it."""

READINGS_QUEUE_BATCHES = 256
"""Poll batches held between the sources and the rules task before sources wait."""
TICK_INTERVAL_S = 0.2
"""How often the rules see the clock when no reading arrives (deadlines, staleness)."""
SHUTDOWN_BUDGET_S = 8.0
"""SIGTERM to exit: systemd's default stop timeout is longer, the contract is 10 s."""
OUTBOX_RETRY_S = 1.0
"""How often alerts held by a full outbox are offered again (the forwarder may have drained
it); the rules go on meanwhile."""
OUTBOX_RETRY_MAX_S = 30.0
"""The longest wait between retries after an outbox write error (doubling from 1 s)."""
STATE_FLUSH_S = 5.0
"""Rule state that changed without an event (pending timers, last values) is saved this often."""


class AgentError(EdgeAgentError):
    """The agent could not start (state directory, outbox, health port)."""


@dataclass
class PipelineCounters:
    """What the pipeline itself counts (the stages count their own)."""

    readings: dict[str, int] = field(default_factory=lambda: {"good": 0, "uncertain": 0, "bad": 0})
    unknown_sensor_readings: int = 0
    alarm_events: int = 0
    activations: dict[str, int] = field(default_factory=dict)
    alerts_queued: int = 0
    outbox_refused: int = 0
    """Alert events the outbox refused, each counted once however often it is retried."""
    outbox_retries: int = 0
    """Attempts to store alerts the outbox had refused before."""
    alerts_rejected: int = 0
    outbox_write_errors: int = 0
    """Outbox writes that failed for another reason than a full outbox (locked, I/O)."""
    alerts_recovered: int = 0
    """Alerts found in the rule state at start-up (a crash before the outbox had them)."""
    rule_errors: int = 0
    """Engine calls that raised outside any one rule (per-rule errors: ``engine.faults``)."""
    state_save_errors: int = 0


def source_signature(config: SiteConfig, connection: str) -> Any:
    """Everything that defines one source: its connection and its sensors. Two configs
    with the same signature for a connection can keep the running source."""
    sensors = sorted(
        (sensor_id, sensor.model_dump(mode="json", by_alias=True))
        for sensor_id, sensor in config.sensors.items()
        if sensor.connection == connection
    )
    return (
        config.connections[connection].model_dump(mode="json", by_alias=True),
        config.defaults.poll,
        sensors,
    )


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
        self.latest: dict[str, Reading] = {}
        # The last alarm events, newest last (for the demo's view and debugging).
        self.recent_events: deque[Any] = deque(maxlen=50)
        self.started_ns = time.time_ns()
        self.source_times = SourceTimeCheck(config.defaults.source_time_skew)
        # Set at start, from the saved rule state's wall time.
        self.wall_clock: WallClockCheck | None = None
        self.stopping = False
        # Alerts waiting to enter the outbox, full or failing (the rules go on meanwhile).
        self.holding_alerts = 0
        self._refused = RefusedAlerts()
        self.hold = AlertHold(config.storage.max_held_alerts)
        self._error_pause = OUTBOX_RETRY_S
        # Why the last outbox write failed, if it did and no write succeeded since
        # (not set for a full outbox: that is ``holding_alerts`` and the outbox's own flag).
        self.outbox_write_error: str | None = None
        # MQTT mode: which work order each rule has open (fed by the hub's answers).
        self.work_orders: Any = None
        self._queue: asyncio.Queue[Sequence[Reading] | None] = asyncio.Queue(
            maxsize=READINGS_QUEUE_BATCHES
        )
        self._sources: dict[str, Source] = {}
        self._source_tasks: dict[str, asyncio.Task[None]] = {}
        self._rules_task: asyncio.Task[None] | None = None
        self._forwarder_task: asyncio.Task[None] | None = None
        self._forwarder: Forwarder | None = None
        self._apply_lock = asyncio.Lock()
        # Recent readings on disk (history:); its settings take effect at a restart.
        self.history = (
            HistoryRecorder(state_dir, config.history) if config.history.enabled else None
        )
        self._history_task: asyncio.Task[None] | None = None
        # Imported here, not at module level: each pulls in its stage's libraries.
        from edge_agent.outbox.store import Outbox
        from edge_agent.rules import RuleEngine, RuleStateStore

        self._outbox_cls = Outbox
        self._rule_engine_cls = RuleEngine
        self._rule_store_cls = RuleStateStore
        self.outbox: Any = None
        self.engine: Any = None
        self.rule_store: Any = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the state, build every stage and start their tasks. No network I/O is
        awaited here: sources and forwarder connect (and retry) in their own tasks."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise AgentError(f"cannot create state directory {self.state_dir}: {exc}") from exc
        # A crash in the middle of an atomic write leaves its temporary file: not ours to keep.
        remove_stale_temporaries(self.state_dir)
        from edge_agent.outbox.store import OutboxError
        from edge_agent.service.state_formats import check_state_folder

        # A later release's files (a rollback) stop the start before any is opened.
        await asyncio.to_thread(check_state_folder, self.state_dir)
        try:
            # A damaged outbox is set aside, not fatal (docs/outbox.md, "A damaged outbox").
            self.outbox = await asyncio.to_thread(
                self._outbox_cls.open_or_replace,
                self.state_dir / "outbox",
                self.config.storage.max_bytes,
            )
            self.rule_store = self._rule_store_cls.in_directory(self.state_dir)
            # Not durable on its own: ``_accept`` saves the state together with the alert
            # messages it produced, then puts them in the outbox.
            # The saved state continues on this run's monotonic clock (see RuleEngine).
            self.engine = self._rule_engine_cls(
                self.config, self.rule_store, durable=False, resume_at=agent_clock.now_ns()
            )
        except (OSError, OutboxError) as exc:
            raise AgentError(f"cannot open the state in {self.state_dir}: {exc}") from exc
        self.wall_clock = WallClockCheck(self.rule_store.saved_wall_ns)
        self.wall_clock.poll()
        self._rules_task = self.supervisor.start(self._rules_loop(), "rules")
        if self.history is not None:
            self._history_task = self.supervisor.start(self.history.run(), "history")
        self._start_forwarder()
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
        for name in list(self._source_tasks):
            await self._stop_source(name)
        if self._rules_task is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)
            if not await wait_done(self._rules_task, 3.0):
                log.warning("Rules did not drain in time; cancelling.")
                await self.supervisor.stop(self._rules_task, 3.0)
        if self._history_task is not None:
            await self.supervisor.stop(self._history_task, 3.0)  # writes what it holds
        # Always written at a stop: after a task failure the restart continues from here.
        try:
            self._save_rule_state(force=True)
        except Exception:
            # The error that ended the rules task may be the one that fails the save (a
            # bug): the stop goes on, so the outbox still closes and the exit status says it.
            self.counters.state_save_errors += 1
            log.exception("Saving the rule state at stop failed.")
        else:
            if self.rule_store is not None and self.engine is not None and not self.engine.dirty:
                log.info("Rule state saved.", extra={"path": str(self.rule_store.path)})
        await self._stop_forwarder()
        if self.outbox is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.outbox.close)
        log.info("Agent stopped.", extra={"site": self.config.site.id})

    def task_failures(self) -> list[str]:
        """Names of tasks that ended on their own (they should run until stopped)."""
        return [failure.task for failure in self.supervisor.failures]

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
            source.run(self._sink), f"source:{source.name}"
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
        forwarding = self.config.forwarding
        if forwarding is None:
            log.warning("No forwarding configured: alerts stay in the outbox.")
            return
        if forwarding.mode == "mqtt" and forwarding.mqtt is not None:
            self._forwarder = self._mqtt_forwarder(forwarding.mqtt)
        else:
            from edge_agent.forwarders import build_forwarder

            self._forwarder = build_forwarder(
                self.config, self.outbox, self.state_dir, self.base_dir
            )
        # The work-order ledger shares storage.max_bytes with the outbox, up to a quarter of
        # it: a week of ledger rows under a small cap must never leave the outbox no room
        # (every alert held with the destination healthy).
        shared = self._forwarder.stored_bytes
        share = self.config.storage.max_bytes // LEDGER_SHARE_OF_CAP
        self.outbox.shared_bytes = lambda: min(shared(), share)
        self._forwarder_task = self.supervisor.start(self._forwarder.run(), "forwarder")

    def _mqtt_forwarder(self, mqtt: Any) -> Forwarder:
        """The MQTT forwarder, also listening to the hub's answers and work-order statuses
        for this site: while a rule's work order is open, a re-activation names it
        (``related_work_order``) and the hub comments on it instead of creating another."""
        from edge_agent.forwarders.mqtt import MqttForwarder
        from edge_agent.forwarders.workorder_status import WorkOrderTracker, status_topics

        site = self.config.site.id
        tracker = WorkOrderTracker(self.state_dir, site, mqtt.topic_prefix)
        self.work_orders = tracker

        def on_message(message: Any) -> None:
            try:
                tracker.on_message(message.topic, message.payload)
            except OSError as exc:  # the map could not be saved; the next message retries
                log.error("Work order map not saved.", extra={"error": str(exc)})

        return MqttForwarder(
            mqtt,
            site,
            self.outbox,
            self.base_dir,
            subscriptions=[(topic, 1) for topic in status_topics(mqtt.topic_prefix, site)],
            on_message=on_message,
        )

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

    async def _sink(self, readings: Sequence[Reading]) -> None:
        # Awaiting a full queue is the backpressure: the source polls again only when the
        # rules have caught up, instead of readings piling up in memory.
        if readings:
            # Stamped on arrival: readings that wait in the queue (behind a stall) keep the
            # time they arrived, and an unchanged value polled again is a fresh reading.
            received = agent_clock.now_ns()
            wall_ns = time.time_ns()
            self.source_times.check(readings, wall_ns)
            if self.history is not None:
                self.history.offer(readings, wall_ns)  # memory only: never waits
            await self._queue.put([reading.received(received) for reading in readings])

    # ------------------------------------------------------------------ rules

    async def _rules_loop(self) -> None:
        self._recover_pending()
        next_tick = time.monotonic()
        next_flush = next_tick + STATE_FLUSH_S
        while True:
            # ``asyncio.timeout``, not ``wait_for``: on 3.11 the latter can return a batch
            # and drop a cancellation that arrives with it, and the stop never happens.
            batch: Sequence[Reading] | None = ()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_tick - time.monotonic())):
                    batch = await self._queue.get()
            if batch is None:
                if self.rule_store.pending_messages:
                    log.error(
                        "Stopping with alerts the outbox did not take; they are kept with the "
                        "rule state and queued after the restart.",
                        extra={"alerts": len(self.rule_store.pending_messages)},
                    )
                return
            events: list[Any] = []
            for reading in batch:
                events.extend(self._feed(reading))
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + TICK_INTERVAL_S
                events.extend(self._tick(agent_clock.now_ns()))
                if self.wall_clock is not None:
                    self.wall_clock.poll()
            if events:
                await self._accept(events)
            elif time.monotonic() >= next_flush:
                next_flush = time.monotonic() + STATE_FLUSH_S
                self._save_rule_state()
            # Held alerts are offered again between batches: the rules never wait for room.
            if self.rule_store.pending_messages and self.hold.due():
                await self._hand_over()

    def _feed(self, reading: Reading) -> list[Any]:
        # ``_value_``, not ``.value``: the enum property costs ≈ 0.3 µs a reading.
        quality = reading.quality._value_
        self.counters.readings[quality] = self.counters.readings.get(quality, 0) + 1
        self.latest[reading.sensor_id] = reading
        try:
            return list(self.engine.feed(reading))
        except Exception:
            self.counters.rule_errors += 1
            log.exception("Rule evaluation failed.", extra={"sensor": reading.sensor_id})
            return []

    def _tick(self, now_ns: int) -> list[Any]:
        try:
            return list(self.engine.tick(now_ns) or [])
        except Exception:
            self.counters.rule_errors += 1
            log.exception("Rule clock tick failed.")
            return []

    async def _accept(self, events: list[Any]) -> None:
        """Make the events' alert messages durable together with the rule state, then put
        them in the outbox (see the module docstring)."""
        self.counters.alarm_events += len(events)
        offset = agent_clock.wall_offset_ns()
        events = [agent_clock.on_wall_clock(event, offset) for event in events]
        self.recent_events.extend(events)
        messages: list[Any] = []
        for event in events:
            if event.kind == "activated" and event.rule_id is not None:
                activations = self.counters.activations
                activations[event.rule_id] = activations.get(event.rule_id, 0) + 1
            message = self._render(event)
            log.info(
                "Alarm event.",
                extra={
                    "rule": event.rule_id,
                    "sensor": event.sensor_id,
                    "event": event.kind,
                    "value": event.value,
                    "priority": event.priority,
                    "alert_id": event.alert_id,
                    # What the engine decided (cooldown, chattering and flood hold it).
                    "notify": event.notify,
                },
            )
            if message is not None:
                message = self._with_source_time(message)
                if self.work_orders is not None:
                    message = self.work_orders.annotate(message)
                messages.append(message)
        if not messages:
            self._save_rule_state()
            return
        # One atomic write: the new rule state and the messages it produced (the rules
        # loop hands them to the outbox next). While the outbox refuses, the hold is
        # bounded (see held_alerts); otherwise a burst goes whole to the outbox first.
        held = list(self.rule_store.pending_messages)
        if self.hold.reason is None:
            self.rule_store.pending_messages = [*held, *messages]
        else:
            self.rule_store.pending_messages = self.hold.admit(held, messages)
        self.holding_alerts = len(self.rule_store.pending_messages)
        self._save_rule_state(force=True)

    def _with_source_time(self, message: Any) -> Any:
        """The message with its sensor's last source timestamp (what the device said), when
        the agent has one that can be written as a date."""
        latest = self.latest.get(message["sensor"])
        text = None if latest is None else agent_clock.source_time_text(latest.source_time_ns)
        return message if text is None else {**message, "source_time": text}

    def clock_problems(self) -> list[str]:
        """``/readyz`` reasons about the wall clock (alarm timing never depends on it)."""
        reason = self.wall_clock.reason if self.wall_clock is not None else None
        return [] if reason is None else [reason]

    def _render(self, event: Any) -> Any:
        """The event's alert message. A rule whose own rendering fails (a template or a
        ``due_in`` that cannot be rendered) is faulted, and its event still goes out, in
        plain words and without a due date, so that its episode gets its work order."""
        from edge_agent.rules import to_alert_message
        from edge_agent.rules.faults import RENDER, describe
        from edge_agent.rules.render import plain_alert_message

        try:
            return to_alert_message(event, self.config)
        except Exception as exc:
            self.engine.faults.record(event.rule_id or "", RENDER, exc)
            return plain_alert_message(event, self.config, describe(exc))

    def _recover_pending(self) -> None:
        """Queue the alerts a crash left in the rule state (saved, not yet in the outbox)."""
        pending = list(self.rule_store.pending_messages) if self.rule_store is not None else []
        if not pending:
            return
        self.counters.alerts_recovered += len(pending)
        log.warning(
            "Queuing alerts saved with the rule state before the agent stopped.",
            extra={
                "alerts": len(pending),
                "alert_ids": sorted({m.get("alert_id") for m in pending}),
            },
        )
        self.holding_alerts = len(pending)

    async def _hand_over(self) -> None:
        """Offer ``rule_store.pending_messages`` to the outbox once; on success they leave
        the state file with its next save. Nothing the outbox raises ends the rules task,
        and nothing here waits for room (the rules loop offers them again when due):

        - full (cap or disk): held, offered again every ``OUTBOX_RETRY_S``;
        - an alert that can never be stored (too large, not JSON): counted, logged and
          dropped (see :meth:`_put_pending`);
        - any other error (a locked store, I/O): counted, logged with the reason and offered
          again after a doubling pause; the messages stay held (and saved with the rule state).
        """
        from edge_agent.outbox.store import OutboxError, OutboxFull

        messages = list(self.rule_store.pending_messages)
        self.counters.outbox_retries += self._refused.is_retry(messages)
        try:
            await self._put_pending(messages)
        except OutboxFull as exc:
            self._error_pause = OUTBOX_RETRY_S
            self.outbox_write_error = None
            first = self.hold.reason is None
            self.hold.wait("disk" if exc.disk_full else "cap", OUTBOX_RETRY_S)
            # Each refused alert event counted once, however often it is offered again;
            # the outbox logs every refusal itself.
            held = self.rule_store.pending_messages
            self.counters.outbox_refused += self._refused.newly_refused(held)
            if first:
                log.error(
                    "Outbox is full; polling continues, alerts are held until it has room.",
                    extra={
                        "alerts": len(self.rule_store.pending_messages),
                        "reason": self.hold.reason,
                        "max_held_alerts": self.hold.limit,
                    },
                )
        except Exception as exc:
            # OutboxError is the expected kind; anything else is a bug below us, but
            # must not cost the alerts or stop the rules either.
            pause = self._error_pause
            self._error_pause = min(pause * 2, OUTBOX_RETRY_MAX_S)
            self.hold.wait("error", pause)
            self.counters.outbox_write_errors += 1
            self.outbox_write_error = str(exc) or type(exc).__name__
            log.error(
                "Outbox write failed; the alerts stay with the rule state and are retried.",
                extra={
                    "error": self.outbox_write_error,
                    "error_type": type(exc).__name__,
                    "alerts": len(self.rule_store.pending_messages),
                    "retry_in_s": pause,
                },
                exc_info=not isinstance(exc, OutboxError),
            )
        else:
            self._error_pause = OUTBOX_RETRY_S
        if len(self.rule_store.pending_messages) > self.hold.limit:
            # A burst (or a state saved under a higher limit) larger than the hold.
            self.rule_store.pending_messages = self.hold.admit([], self.rule_store.pending_messages)
            self._save_rule_state(force=True)
        self.holding_alerts = len(self.rule_store.pending_messages)
        if not self.rule_store.pending_messages:
            # Also when the last of them left through ``_put_one_by_one`` before an error.
            if self.hold.reason is not None:
                log.info("Held alerts are in the outbox; nothing is held any more.")
            self.hold.clear()
            self.outbox_write_error = None

    async def _put_pending(self, messages: list[Any]) -> None:
        """Put ``messages`` (all of ``pending_messages``) in the outbox in one transaction;
        if one of them can never be stored, or they do not all fit under the cap, one at a
        time instead: what fits is stored, the rest waits in order. What was stored or
        rejected leaves ``pending_messages``; raises what else the outbox raised."""
        from edge_agent.outbox.calls import outbox_call
        from edge_agent.outbox.store import OutboxFull, PayloadRejected

        def stored(_ids: object = None) -> None:
            self.rule_store.pending_messages = []
            self._settle_pending()
            self._queued(len(messages))

        try:
            # Cancelled mid-put: the put still ends and is accounted for (``undo``).
            await outbox_call(self.outbox.put_many, messages, undo=stored)
        except PayloadRejected:
            await self._put_one_by_one(messages)
            return
        except OutboxFull:
            if len(messages) == 1:
                raise
            # A burst larger than the room left (even in an empty outbox, under a small
            # cap) must not wait for room it can never get: store what fits.
            await self._put_one_by_one(messages)
            return
        stored()

    def _settle_pending(self) -> None:
        # The state file still lists the messages now in the outbox; the next periodic
        # flush rewrites it. A crash before then queues them again: duplicates with the
        # same event ids, which every forwarder and the hub drop.
        if self.engine is not None:
            self.engine.soft_dirty = True

    def _queued(self, count: int) -> None:
        self.counters.alerts_queued += count
        # The forwarder idles between outbox polls: a new alert goes out now, not at the
        # next poll.
        if self._forwarder is not None:
            self._forwarder.wake()

    async def _put_one_by_one(self, messages: list[Any]) -> None:
        """Store the messages one at a time; one that can never be stored is rejected
        (logged, counted). Each message leaves ``pending_messages`` once stored or rejected,
        so an error from the outbox (raised: full, I/O) leaves exactly the rest pending."""
        from edge_agent.outbox.calls import outbox_call
        from edge_agent.outbox.store import PayloadRejected

        for index, message in enumerate(messages):
            rest = messages[index + 1 :]

            def stored(_ids: object, rest: list[Any] = rest) -> None:
                self.rule_store.pending_messages = rest

            try:
                await outbox_call(self.outbox.put_many, [message], undo=stored)
            except PayloadRejected as exc:
                self.counters.alerts_rejected += 1
                log.error(
                    "Alert can never be stored in the outbox (too large or not JSON); rejected.",
                    extra={"alert_id": message.get("alert_id"), "error": str(exc)},
                )
            else:
                self._queued(1)
            self.rule_store.pending_messages = rest
            self._settle_pending()

    def _save_rule_state(self, *, force: bool = False) -> None:
        """Save the rule state (and the pending messages) if anything changed, or always
        with ``force``."""
        if self.rule_store is None or self.engine is None:
            return
        if force:
            self.engine.mark_changed()
        # The engine logs and counts a failed save and stays dirty: the next flush retries.
        if not self.engine.flush():
            self.counters.state_save_errors += 1

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
            self.engine.reconfigure(new)
            self.source_times.skew_ns = new.defaults.source_time_skew
            # A faulted rule stays faulted until a reload changes (or removes) it.
            kept = {rule.id: rule for rule in new.rules}
            self.engine.faults.forget({r.id for r in old.rules if kept.get(r.id) != r})
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

                for source in build_sources(new, self.base_dir):
                    if source.name in missing:
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
            for section in ("storage", "health", "logging"):
                if getattr(old, section) != getattr(new, section):
                    log.warning("This section changes only on restart.", extra={"section": section})
            self._save_rule_state()
            return changes

    # ------------------------------------------------------------------ health

    def outbox_stats(self) -> Any:
        return self.outbox.stats() if self.outbox is not None else None
