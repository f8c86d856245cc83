"""The rules task: readings from the sources and clock ticks through the rule engine, alert
messages to the state-and-outbox handover (:mod:`edge_agent.service.handover`).

The rules run on the agent's monotonic clock (``agent_clock``): a batch is stamped when it
reaches the agent and the engine is ticked with the same clock; a source's timestamp is
checked for plausibility and reported, never used for a deadline. Alert messages get
wall-clock times when they are made.

Between the sources and the rules is a bounded queue: a full queue makes the sources wait
(backpressure) instead of readings piling up in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol, cast

from edge_agent.config.models import SiteConfig
from edge_agent.history.recorder import HistoryRecorder
from edge_agent.readings import Quality, Reading
from edge_agent.service import agent_clock
from edge_agent.service.agent_clock import SourceTimeCheck, WallClockCheck
from edge_agent.service.handover import OutboxHandover, PipelineCounters

if TYPE_CHECKING:
    from edge_agent.alerts import AlertMessage
    from edge_agent.forwarders.workorder_status import StatusChange, WorkOrderTracker
    from edge_agent.rules import AlarmEvent, RuleEngine
    from edge_agent.service.plant import PlantData

# The agent's logger name from before this module was split out of the pipeline: operators
# and their log filters know it.
log = logging.getLogger("edge_agent.service.pipeline")

GOOD: Final = Quality.GOOD
GOOD_KEY: Final = Quality.GOOD._value_

READINGS_QUEUE_BATCHES: Final = 256
"""Poll batches held between the sources and the rules task before sources wait."""
MAX_WORK_ORDER_CHANGES: Final = 1000
"""Work order changes waiting for the rules task; more are dropped (counted, logged): the
tracker's map has them, and the engine hears the next change of each work order."""
TICK_INTERVAL_S: Final = 0.2
"""How often the rules see the clock when no reading arrives (deadlines, staleness)."""
STATE_FLUSH_S: Final = 5.0
"""Rule state that changed without an event (pending timers, last values) is saved this often."""
RECENT_EVENTS: Final = 50
MAX_JOBS: Final = 64
"""Engine calls from outside the readings (alarm commands) waiting for the rules task."""


class Batch(NamedTuple):
    """A source's readings as queued for the rules, with the agent's monotonic time when
    they arrived (the engine runs on it: see :meth:`RuleEngine.feed`)."""

    received_ns: int
    readings: Sequence[Reading]


class Fed(NamedTuple):
    """A batch the sink fed to the engine itself (the rules task was idle): the events it
    gave, for the rules task to hand over in its turn (see :meth:`RulesLoop.sink`), and
    the configuration the engine ran them under (a reload may come before that turn:
    its rules render them, not the new file's)."""

    events: list[AlarmEvent]
    config: SiteConfig


class RulesJob(Protocol):
    """Work on the engine from outside the readings (a person's alarm command), done inside
    the rules task between batches, so that its events take the rules' own path (wall time,
    rendering, saved with the rule state, then the outbox) and never race a hand-over."""

    def apply(self, engine: RuleEngine, now_ns: int) -> Sequence[AlarmEvent]:
        """Change the engine; the events to hand over (engine clock, as ``tick``'s)."""

    def saved(self) -> None:
        """The rule state with those events was saved (or its save is retried)."""


class RulesLoop:
    """Feeds the engine and hands its alert messages over. :meth:`sink` is what the
    sources deliver to; :meth:`run` is the rules task (``None`` in the queue ends it).

    ``config``, ``engine``, ``wall_clock`` and ``work_orders`` are set by the agent (at
    start and on reload).
    """

    def __init__(
        self,
        config: SiteConfig,
        counters: PipelineCounters,
        handover: OutboxHandover,
        history: HistoryRecorder | None,
    ) -> None:
        self.config = config
        self.counters = counters
        self.handover = handover
        self.history = history
        # Alarm commands waiting for the rules task (see submit).
        self._jobs: deque[RulesJob] = deque()
        self.latest: dict[str, Reading] = {}
        # The last alarm events, newest last (for the demo's view and debugging).
        self.recent_events: deque[AlarmEvent] = deque(maxlen=RECENT_EVENTS)
        self.source_times = SourceTimeCheck(config.defaults.source_time_skew)
        # Set at start, before the loop runs (nothing reads it before).
        self.engine: RuleEngine
        # Set at start, from the saved rule state's wall time.
        self.wall_clock: WallClockCheck | None = None
        # Which work order each rule has open (the hub's answers; direct mode's polls).
        self.work_orders: WorkOrderTracker | None = None
        # Meters and downtime (issue 14): fed the same readings, on the wall clock.
        self.plant: PlantData | None = None
        # Work order changes for the engine (the alarm lifecycle), taken between batches.
        self.work_order_changes: deque[StatusChange] = deque()
        self.work_order_changes_dropped = 0
        # A batch, a batch already fed (its events), an empty tuple (wakes the task: a job,
        # the tick's timer) or None (stop).
        self.queue: asyncio.Queue[Batch | Fed | tuple[()] | None] = asyncio.Queue(
            maxsize=READINGS_QUEUE_BATCHES
        )
        # The timer that wakes the rules task for its next tick when no batch comes first.
        self._tick_timer: asyncio.TimerHandle | None = None
        # The rules task while it runs, and whether it waits in ``queue.get`` (see sink).
        self._task: asyncio.Task[None] | None = None
        self._parked = False
        # Monotonic time of the rules task's next tick or state flush, whichever is first.
        self._next_due = 0.0

    def submit(self, job: RulesJob) -> bool:
        """Run ``job`` in the rules task at its next turn (call on the loop); False when
        :data:`MAX_JOBS` already wait (the caller answers "busy")."""
        if len(self._jobs) >= MAX_JOBS:
            return False
        self._jobs.append(job)
        # An empty batch wakes the task now; a full queue means it is busy and comes soon.
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(())
        return True

    async def sink(self, readings: Sequence[Reading]) -> None:
        """Where every source delivers its readings. The batch is kept as it is (the
        sources hand over a new list each time and never change it afterwards)."""
        # Awaiting a full queue is the backpressure: the source polls again only when the
        # rules have caught up, instead of readings piling up in memory.
        if readings:
            # Stamped on arrival: readings that wait in the queue (behind a stall) keep the
            # time they arrived, and an unchanged value polled again is a fresh reading.
            # One stamp for the batch, given to the engine with each reading: no copy of
            # every reading with its received time (≈ 1 µs a reading at 10 ms polls).
            received = agent_clock.now_ns()
            wall_ns = time.time_ns()
            self.source_times.check(readings, wall_ns)
            if self.history is not None:
                self.history.offer(readings, wall_ns)  # memory only: never waits
            if self.plant is not None:
                await self.plant.offer(readings, wall_ns)
            if self._parked and self._may_feed_here():
                # The rules task is idle: feed the engine here, with no queue hop and no
                # wake-up of that task per batch (100 a second at 10 ms polls). Only the
                # events, if any, go to the task, which hands them over in its turn.
                events = self._feed_batch(readings, received)
                if events:
                    self.queue.put_nowait(Fed(events, self.config))  # empty: never full
                return
            await self.queue.put(Batch(received, readings))

    def _may_feed_here(self) -> bool:
        """Whether the sink may feed a batch to the engine itself: exactly when the rules
        task would feed it next and do nothing else in that turn. The task waits on an
        empty queue (nothing queued goes first), is not being cancelled (its stop must not
        find the engine ahead of what it handed over), and has no tick, flush, job, work
        order change or held alert due (those need its turn: the batch takes the queue)."""
        task = self._task
        return (
            task is not None
            and not self.queue.qsize()
            and not task.cancelling()
            and not self._jobs
            and not self.work_order_changes
            and time.monotonic() < self._next_due
            and not self.handover.pending
        )

    async def run(self) -> None:
        """The rules task, until ``None`` comes through the queue (or a cancel)."""
        handover = self.handover
        handover.recover()
        loop = asyncio.get_running_loop()
        next_tick = time.monotonic()
        next_flush = next_tick + STATE_FLUSH_S
        self._task = asyncio.current_task()
        try:
            while True:
                # A plain ``get``: cancellation-safe (``wait_for`` on 3.11 can return a batch
                # and drop a cancellation that arrives with it). The tick's timer wakes the
                # task when no batch comes: one timer per tick instead of an
                # ``asyncio.timeout`` per batch (a hundred a second at 10 ms polls).
                if self._tick_timer is None:
                    self._tick_timer = loop.call_later(
                        max(0.0, next_tick - time.monotonic()), self._tick_due
                    )
                self._next_due = min(next_tick, next_flush)
                self._parked = True
                try:
                    batch = await self.queue.get()
                finally:
                    self._parked = False
                if batch is None:
                    if handover.pending:
                        log.error(
                            "Stopping with alerts the outbox did not take; they are kept with "
                            "the rule state and queued after the restart.",
                            extra={"alerts": len(handover.rule_state().pending_messages)},
                        )
                    return
                if isinstance(batch, Fed):
                    events = batch.events
                    if batch.config is not self.config:
                        # A reload came between the feed and this turn: the events render
                        # under the rules they fired from (the new file may lack them).
                        await self._accept(events, batch.config)
                        events = []
                elif batch:
                    events = self._feed_batch(batch.readings, batch.received_ns)
                else:
                    events = []
                if self.work_order_changes:
                    events.extend(self._work_order_events(agent_clock.now_ns()))
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + TICK_INTERVAL_S
                    events.extend(self._tick(agent_clock.now_ns()))
                    if self.wall_clock is not None:
                        self.wall_clock.poll()
                jobs = self._take_jobs() if self._jobs else []
                for job in jobs:
                    events.extend(self._apply(job))
                if events:
                    await self._accept(events)
                elif jobs:
                    handover.save_rule_state()
                elif time.monotonic() >= next_flush:
                    next_flush = time.monotonic() + STATE_FLUSH_S
                    handover.save_rule_state()
                for job in jobs:
                    self._saved(job)
                # Held alerts are offered again between batches: the rules never wait for room.
                if handover.pending and handover.hold.due():
                    await handover.hand_over()
        finally:
            self._task = None
            self._admit_fed_left()
            if self._tick_timer is not None:
                self._tick_timer.cancel()
                self._tick_timer = None

    def _admit_fed_left(self) -> None:
        """Events of batches the sink fed while this task was idle, still queued when the
        task ends (a cancel, a bug): into the rule state now, which a stop saves. The engine
        already has them: dropped, their alerts would be lost for good (a batch queued and
        never fed is polled again). The plant's downtime misses them, as at any cancel."""
        kept: list[Batch | Fed | tuple[()] | None] = []
        fed: list[Fed] = []
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if isinstance(item, Fed):
                fed.append(item)
            else:
                kept.append(item)
        for item in kept:  # the rest stays queued, as it was
            self.queue.put_nowait(item)
        for item in fed:
            try:
                self._admit(self._on_wall_clock(item.events), item.config)
            except Exception:
                log.exception("Alarm events fed before the rules task ended were not kept.")

    def _tick_due(self) -> None:
        """The tick's timer: wake the rules task (a full queue means it comes soon anyway)."""
        self._tick_timer = None
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(())

    def _take_jobs(self) -> list[RulesJob]:
        jobs = list(self._jobs)
        self._jobs.clear()
        return jobs

    def _apply(self, job: RulesJob) -> list[AlarmEvent]:
        try:
            return list(job.apply(self.engine, agent_clock.now_ns()))
        except Exception:
            self.counters.rule_errors += 1
            log.exception("An alarm command failed in the rules.")
            return []

    def _saved(self, job: RulesJob) -> None:
        try:
            job.saved()
        except Exception:
            log.exception("An alarm command's completion failed.")

    def _feed_batch(self, readings: Sequence[Reading], received_ns: int) -> list[AlarmEvent]:
        """Every reading of a batch through the engine, at the time the batch arrived."""
        events: list[AlarmEvent] = []
        counts = self.counters.readings
        latest = self.latest
        feed = self.engine.feed
        good = 0  # counted once for the batch: most readings are good
        for reading in readings:
            quality = reading.quality
            if quality is GOOD:
                good += 1
            else:
                # ``_value_``, not ``.value``: the enum property costs ≈ 0.3 µs a reading.
                counts[quality._value_] = counts.get(quality._value_, 0) + 1
            latest[reading.sensor_id] = reading
            try:
                fired = feed(reading, received_ns)
            except Exception:
                self.counters.rule_errors += 1
                log.exception("Rule evaluation failed.", extra={"sensor": reading.sensor_id})
                continue
            if fired:
                events.extend(fired)
        if good:
            counts[GOOD_KEY] = counts.get(GOOD_KEY, 0) + good
        return events

    def offer_work_order_status(self, change: StatusChange) -> None:
        """A rule's work order changed (call on the event loop: the tracker's listener hops
        here with ``call_soon_threadsafe``); the rules task hands it to the engine."""
        if len(self.work_order_changes) >= MAX_WORK_ORDER_CHANGES:
            self.work_order_changes_dropped += 1
            log.warning(
                "Too many work order changes waiting for the rules; one dropped.",
                extra={"rule": change.rule, "work_order_id": change.work_order_id},
            )
            return
        self.work_order_changes.append(change)

    def _work_order_events(self, now_ns: int) -> list[AlarmEvent]:
        events: list[AlarmEvent] = []
        while self.work_order_changes:
            change = self.work_order_changes.popleft()
            try:
                events.extend(
                    self.engine.work_order_status(
                        change.rule,
                        change.work_order_id,
                        change.status,
                        now_ns,
                        assigned=change.assigned,
                    )
                )
            except Exception:
                self.counters.rule_errors += 1
                log.exception(
                    "Work order status not applied to the rules.",
                    extra={"rule": change.rule, "work_order_id": change.work_order_id},
                )
        return events

    def _tick(self, now_ns: int) -> list[AlarmEvent]:
        try:
            return list(self.engine.tick(now_ns) or [])
        except Exception:
            self.counters.rule_errors += 1
            log.exception("Rule clock tick failed.")
            return []

    async def _accept(self, events: list[AlarmEvent], config: SiteConfig | None = None) -> None:
        """Make the events' alert messages durable together with the rule state, then put
        them in the outbox (see :mod:`edge_agent.service.handover`). ``config``: the one
        the engine made them under, when a reload has come since (the current one else)."""
        events = self._on_wall_clock(events)
        # Durable first: the engine already has these events, and the plant's offer may
        # wait (a full meters queue) when a stop cancels this task; admitted after it,
        # they were lost for good (the stop saves the engine's state without them).
        self._admit(events, config)
        if self.plant is not None:  # a rule may be an asset's downtime (issue 14)
            await self.plant.offer_events(events)

    def _on_wall_clock(self, events: list[AlarmEvent]) -> list[AlarmEvent]:
        """The events counted, on the wall clock, and kept among the recent ones."""
        self.counters.alarm_events += len(events)
        offset = agent_clock.wall_offset_ns()
        events = [agent_clock.on_wall_clock(event, offset) for event in events]
        self.recent_events.extend(events)
        return events

    def _admit(self, events: list[AlarmEvent], config: SiteConfig | None = None) -> None:
        """The events' alert messages into the rule state (or the state saved without),
        rendered under ``config`` (the current one by default)."""
        if config is None:
            config = self.config
        messages: list[dict[str, Any]] = []  # as the rule state keeps them: JSON objects
        for event in events:
            count_activation(self.counters.activations, event)
            message = self._render(event, config)
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
                messages.append(cast(dict[str, Any], message))
        if not messages:
            self.handover.save_rule_state()
            return
        self.handover.admit(messages)

    def _with_source_time(self, message: AlertMessage) -> AlertMessage:
        """The message with its sensor's last source timestamp (what the device said), when
        the agent has one that can be written as a date."""
        latest = self.latest.get(message["sensor"])
        text = None if latest is None else agent_clock.source_time_text(latest.source_time_ns)
        return message if text is None else {**message, "source_time": text}

    def _render(self, event: AlarmEvent, config: SiteConfig) -> AlertMessage | None:
        """The event's alert message. A rule whose own rendering fails (a template or a
        ``due_in`` that cannot be rendered) is faulted, and its event still goes out, in
        plain words and without a due date, so that its episode gets its work order."""
        from edge_agent.rules import to_alert_message
        from edge_agent.rules.faults import RENDER, describe
        from edge_agent.rules.render import plain_alert_message

        try:
            return to_alert_message(event, config)
        except Exception as exc:
            self.engine.faults.record(event.rule_id or "", RENDER, exc)
            return plain_alert_message(event, config, describe(exc))


def count_activation(activations: dict[str, int], event: AlarmEvent) -> None:
    """Count an episode's activation once per rule: a release (``released``) announces an
    episode counted when its activation was held."""
    if event.kind == "activated" and event.rule_id is not None and event.released is None:
        activations[event.rule_id] = activations.get(event.rule_id, 0) + 1
