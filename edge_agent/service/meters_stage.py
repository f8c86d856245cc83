"""The meters stage in the running agent (issue 14): readings in, plant data messages
(``wire/plant.py``) into the plant-data outbox, the meters' state on disk.

Beside the rules: the sources' readings reach it through the rules loop's sink, stamped with
the **wall clock** at arrival. That is the meters' time axis, because it survives a restart
(the agent's monotonic clock starts again at boot) and so run hours span one; a wall clock
stepping backwards is refused reading by reading (``clock_backwards``), never counted, until
three readings in a row confirm it was set back (``meters/samples.py: in_order``).

After each batch the state of every meter and downtime tracker is written (one JSON file,
replaced atomically) together with the batch's new messages as ``pending``, then the
messages go into the plant-data outbox (one transaction). A crash between the two finds
them pending at the next start (:meth:`MetersStage.recover`): the stage is the outbox's only
writer, so the outbox's highest id says whether that put happened, and they are queued
again only if not. Nothing is lost, nothing queued twice, and a value sent is never
followed by a smaller one of the same meter. A meter whose saved state is damaged starts
afresh (logged, counted in ``state_errors``); the others keep theirs.

A reload keeps the state of every meter whose kind did not change, starts the meters it
adds afresh and forgets the state of the ones it removes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from edge_agent.alerts import format_time_ns
from edge_agent.common.atomic import write_atomic
from edge_agent.common.schema_version import check
from edge_agent.config.models import SiteConfig
from edge_agent.config.models.meters import Meter
from edge_agent.meters import MeterReading, MeterStateError
from edge_agent.meters.downtime import DowntimeTracker, StatusChange
from edge_agent.readings import Quality, Reading
from edge_agent.service.meters_config import (
    MeterLike,
    asset_ref,
    build_meter,
    from_a_new_source,
    later_schema,
    meter_spec,
    sensor_poll_ns,
    source_of,
)
from edge_agent.service.meters_held import trim_held
from edge_agent.service.meters_silence import Silence
from edge_agent.wire.plant import (
    AssetStatusMessage,
    MeterReadingMessage,
    asset_status_id,
    meter_reading_id,
)

if TYPE_CHECKING:
    from edge_agent.outbox.store import Outbox
    from edge_agent.rules import AlarmEvent

log = logging.getLogger(__name__)

STATE_FILE: Final = "meters.json"
STATE_SCHEMA: Final = "edge-agent/meters-state@1"
QUEUE_BATCHES: Final = 256
"""Poll batches held between the sources and the meters before the sources wait."""


@dataclass
class MetersCounters:
    """What the stage counts (health and metrics)."""

    readings_used: int = 0
    values_queued: int = 0
    statuses_queued: int = 0
    outbox_refused: int = 0
    """Messages the plant-data outbox refused (full, or failing), each counted once: held
    and put again with the next batch (in order), up to ``meters_held.HELD_LIMIT``."""
    outbox_dropped: int = 0
    """Held messages given up beyond ``meters_held.HELD_LIMIT`` (the oldest meter values first)."""
    state_errors: int = 0
    """Saved states that could not be restored (started afresh) or written."""
    meter_errors: int = 0
    """Readings a meter failed on (a bug): logged, the other meters go on."""
    last_error: str | None = None


@dataclass
class _Bound:
    """One meter of the site file, built."""

    key: str
    definition: Meter
    meter: MeterLike


@dataclass
class MetersStage:
    """Feeds readings to the meters and downtime trackers; see the module doc.

    ``planned(asset_id)`` says whether a maintenance work order of the asset is in
    progress (downtime ``PLANNED``); None: not known in this mode (always ``UNPLANNED``).
    ``wake`` tells the plant-data forwarder new messages are queued.
    """

    config: SiteConfig
    state_dir: Path
    outbox: Outbox | None
    wake: Callable[[], None] = lambda: None
    planned: Callable[[str], bool] | None = None
    counters: MetersCounters = field(default_factory=MetersCounters)
    meters: dict[str, _Bound] = field(default_factory=dict)
    downtime: dict[str, DowntimeTracker] = field(default_factory=dict)
    queue: asyncio.Queue[tuple[Sequence[Reading], int] | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_BATCHES)
    )

    def __post_init__(self) -> None:
        self._by_sensor: dict[str, list[str]] = {}
        self._running_of: dict[str, list[str]] = {}
        self.queued_through = 0  # the highest outbox id this stage knows it put
        self._saved_pending: list[dict[str, Any]] = []
        self._held: list[dict[str, Any]] = []  # refused by the outbox, put again next time
        self._held_before = 0  # of a commit's messages, how many were held before
        self._saved_through = 0
        self._saved = self._read_state()
        self.silence = Silence()
        self.reconfigure(self.config)

    @property
    def path(self) -> Path:
        return self.state_dir / STATE_FILE

    @property
    def active(self) -> bool:
        """Whether the site file has any meter or asset downtime."""
        return bool(self.meters or self.downtime)

    # ------------------------------------------------------------------ configuration

    def reconfigure(self, config: SiteConfig) -> None:
        """Build the meters of ``config``: an unchanged meter keeps its object, a changed one
        its state when its kind is the same, a new one starts afresh, a removed one is
        forgotten (its state leaves the file at the next write)."""
        current = self.state()["meters"]  # with the sources they read until now
        current_downtime = {asset: t.state() for asset, t in self.downtime.items()}
        meters: dict[str, _Bound] = {}
        for key, definition in config.meters.items():
            old = self.meters.get(key)
            if old is not None and old.definition == definition:
                meters[key] = old
                continue
            built = build_meter(key, definition, sensor_poll_ns(config, definition.sensor))
            saved = current.get(key) if old is not None else self._saved["meters"].get(key)
            if old is not None and old.definition.kind != definition.kind:
                saved = None  # another kind of meter under the same name: a new meter
                log.warning(
                    "A meter changed kind: it starts afresh, but its MaintainX meter (recorded"
                    " and found by its name) is the same; give it a new name for a new one.",
                    extra={
                        "meter": key,
                        "was": old.definition.kind.value,
                        "now": definition.kind.value,
                    },
                )
            elif isinstance(saved, dict) and saved.get("source") not in (
                None,  # saved by a release that did not record it
                source_of(definition, config),
            ):
                saved = from_a_new_source(saved)  # another sensor or register since saved
            self._restore(built, saved, f"meter {key}")
            meters[key] = _Bound(key, definition, built)
        self.config = config
        downtime: dict[str, DowntimeTracker] = {}
        for asset_id, asset in config.assets.items():
            if asset.downtime is None:
                continue
            tracker = self.downtime.get(asset_id)
            if tracker is None:
                tracker = DowntimeTracker(asset_id)
                saved = current_downtime.get(asset_id) or self._saved["downtime"].get(asset_id)
                self._restore(tracker, saved, f"downtime of {asset_id}")
            tracker.min_duration_ns = asset.downtime.min_duration  # a reload may change it
            downtime[asset_id] = tracker
        self.meters, self.downtime = meters, downtime
        self.silence.keep([*meters, *(f"downtime:{asset}" for asset in downtime)])
        # What a previous run saved applies to the first build only.
        self._saved = {"meters": {}, "downtime": {}}
        self._by_sensor = {}
        for key, bound in meters.items():
            self._by_sensor.setdefault(bound.definition.sensor, []).append(key)
        self._running_of = {}
        for asset_id in downtime:
            running = config.assets[asset_id].downtime
            if running is not None:
                self._running_of.setdefault(running.source, []).append(asset_id)

    def wants(self, sensor_id: str) -> bool:
        return sensor_id in self._by_sensor or sensor_id in self._running_of

    def _restore(self, target: MeterLike | DowntimeTracker, saved: Any, what: str) -> None:
        if saved is None:
            return
        try:
            target.restore(saved)
        except MeterStateError as exc:
            self.counters.state_errors += 1
            self.counters.last_error = f"{what}: saved state refused ({exc}); started afresh"
            log.error(
                "A meter's saved state was refused; it starts afresh.",
                extra={"meter": what, "error": str(exc)},
            )

    def _read_state(self) -> dict[str, dict[str, Any]]:
        empty: dict[str, dict[str, Any]] = {"meters": {}, "downtime": {}}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return empty
        except (OSError, ValueError) as exc:
            self.counters.state_errors += 1
            self.counters.last_error = f"{STATE_FILE} unreadable ({exc}); meters start afresh"
            log.error("The meters' state file is unreadable; meters start afresh.")
            return empty
        later = later_schema(data.get("schema") if isinstance(data, dict) else None, "meters-state")
        if later is not None:
            # A rollback: a later release's state is never overwritten (NewerFormatError
            # stops the meters; the alarms run on).
            check("meter state", str(self.path), later, 1)
        if not isinstance(data, dict) or data.get("schema") != STATE_SCHEMA:
            self.counters.state_errors += 1
            self.counters.last_error = f"{STATE_FILE} is not a {STATE_SCHEMA} file"
            log.error("The meters' state file has another schema; meters start afresh.")
            return empty
        meters, downtime = data.get("meters"), data.get("downtime")
        pending, through = data.get("pending"), data.get("queued_through")
        if isinstance(pending, list) and all(isinstance(m, dict) for m in pending):
            self._saved_pending = pending
        if isinstance(through, int) and not isinstance(through, bool):
            self._saved_through = through
        return {
            "meters": meters if isinstance(meters, dict) else {},
            "downtime": downtime if isinstance(downtime, dict) else {},
        }

    # ------------------------------------------------------------------ running

    async def offer(self, readings: Sequence[Reading], wall_ns: int) -> None:
        """Where the rules loop's sink hands the readings (awaits a full queue)."""
        if any(self.wants(reading.sensor_id) for reading in readings):
            await self.queue.put((readings, wall_ns))

    async def offer_events(self, events: Sequence[AlarmEvent]) -> None:
        """Where the rules loop hands its alarm events (on the wall clock): a rule that is
        an asset's downtime (``downtime: {rule: ...}``) is read as a running sensor, 0 from
        its activation, 1 from its clear."""
        for event in events:
            source = f"rule:{event.rule_id}"
            if event.kind in ("activated", "cleared") and source in self._running_of:
                running = 0 if event.kind == "activated" else 1
                reading = Reading(source, running, Quality.GOOD, event.time_ns)
                await self.queue.put(([reading], event.time_ns))

    async def run(self) -> None:
        """The meters task, until ``None`` comes through the queue (or a cancel)."""
        while True:
            item = await self.queue.get()
            batches = [item]
            # What queued meanwhile is committed together: one outbox write, one state write.
            with contextlib.suppress(asyncio.QueueEmpty):
                while len(batches) < QUEUE_BATCHES and batches[-1] is not None:
                    batches.append(self.queue.get_nowait())
            messages: list[dict[str, Any]] = []
            for batch in batches:
                if batch is not None:
                    messages.extend(self.feed(*batch))
            if any(batch is not None for batch in batches):
                await asyncio.to_thread(self.commit, messages)
            if messages:
                self.wake()
            if batches[-1] is None:
                return

    def feed(self, readings: Sequence[Reading], wall_ns: int) -> list[dict[str, Any]]:
        """The plant data messages these readings make (on the wall-clock axis)."""
        messages: list[dict[str, Any]] = []
        for reading in readings:
            keys = self._by_sensor.get(reading.sensor_id, ())
            assets = self._running_of.get(reading.sensor_id, ())
            if not keys and not assets:
                continue
            stamped = reading.received(wall_ns)
            for key in keys:
                bound = self.meters[key]
                self.counters.readings_used += 1
                try:
                    refused = bound.meter.refused.total()
                    value = bound.meter.feed(stamped)
                    self.silence.note(key, bound.meter.refused.total() > refused)
                    if value is not None:
                        messages.append(self._reading_message(bound, value).to_json())
                except Exception as exc:  # a bug in one meter must not stop the others
                    self._failed(key, exc)
            for asset_id in assets:
                try:
                    planned = self.planned is not None and self.planned(asset_id)
                    tracker = self.downtime[asset_id]
                    refused = tracker.refused.total()
                    change = tracker.feed(stamped, planned=planned)
                    self.silence.note(f"downtime:{asset_id}", tracker.refused.total() > refused)
                    if change is not None:
                        messages.append(self._status_message(change).to_json())
                except Exception as exc:
                    self._failed(f"downtime:{asset_id}", exc)
        return messages

    def _failed(self, what: str, exc: Exception) -> None:
        self.counters.meter_errors += 1
        self.counters.last_error = f"{what}: {type(exc).__name__}: {exc}"[:500]
        log.exception("A meter failed on a reading.", extra={"meter": what})

    def _reading_message(self, bound: _Bound, value: MeterReading) -> MeterReadingMessage:
        site = self.config.site.id
        definition = bound.definition
        return MeterReadingMessage(
            site=site,
            id=meter_reading_id(site, bound.key, value.time_ns),
            meter=bound.key,
            asset=asset_ref(self.config, definition.asset),
            maintainx_meter_id=definition.maintainx_meter_id,
            meter_spec=meter_spec(bound.key, definition, self.config),
            value=float(value.value),
            time=format_time_ns(value.time_ns),
            time_ns=value.time_ns,
            kind=definition.kind.value,
        )

    def _status_message(self, change: StatusChange) -> AssetStatusMessage:
        site = self.config.site.id
        downtime = self.config.assets[change.asset].downtime
        if downtime is not None and downtime.rule is not None:
            said = "cleared" if change.status == "ONLINE" else "active"
            description = f"rule {downtime.rule} {said} (edge-agent)"
        else:
            sensor = downtime.running if downtime is not None else "?"
            said = "running" if change.status == "ONLINE" else "stopped"
            description = f"{sensor} says {said} (edge-agent)"
        return AssetStatusMessage(
            site=site,
            id=asset_status_id(site, change.asset, change.status, change.time_ns),
            asset=asset_ref(self.config, change.asset),
            status=change.status,
            downtime_type=change.downtime_type,
            started_at=format_time_ns(change.time_ns),
            time_ns=change.time_ns,
            description=description,
        )

    def commit(self, messages: list[dict[str, Any]]) -> None:
        """The state on disk with these messages as pending, then the messages into the
        outbox (blocking: a worker thread). See :meth:`recover` for a crash in between.
        Messages the outbox refused before go first, in order."""
        self._held_before = len(self._held)
        messages, self._held = [*self._held, *messages], []
        self._write_state(messages)
        if messages:
            self._queue_messages(messages)

    def recover(self, highest_id: int) -> int:
        """At start, before the first :meth:`commit`: the messages the last run saved as
        pending are put in the outbox unless they reached it. The meters are the outbox's
        only writer, so they did exactly when its highest id ever handed out
        (``highest_id``) is above the last one the state knew. Returns how many were put."""
        pending = self._saved_pending
        self._saved_pending = []
        if pending and highest_id <= self._saved_through:
            self._queue_messages(pending)
            log.info("Meter values of the last run queued again.", extra={"count": len(pending)})
        else:
            pending = []
        self.queued_through = max(self.queued_through, highest_id)
        self._write_state([])
        return len(pending)

    def _write_state(self, pending: list[dict[str, Any]]) -> None:
        state = {**self.state(), "pending": pending, "queued_through": self.queued_through}
        try:
            write_atomic(self.path, json.dumps(state, sort_keys=True).encode())
        except OSError as exc:
            self.counters.state_errors += 1
            self.counters.last_error = f"{STATE_FILE} not written: {exc}"
            log.error("The meters' state was not saved.", extra={"error": str(exc)})

    def _queue_messages(self, messages: list[dict[str, Any]]) -> None:
        if self.outbox is None:
            return
        from edge_agent.outbox.errors import OutboxError, PayloadRejected

        try:
            ids = self.outbox.put_many(messages)
        except PayloadRejected as exc:  # never storable: holding it would block the rest
            self._held_before = 0
            self.counters.outbox_dropped += len(messages)
            self.counters.last_error = f"plant-data outbox rejected {len(messages)}: {exc}"
            log.error(
                "The plant-data outbox rejected plant data; it is not sent.",
                extra={"count": len(messages), "error": str(exc)},
            )
            return
        except OutboxError as exc:  # full (cap or disk), failing: held for the next batch
            self._hold(messages, exc)
            return
        self.queued_through = max(self.queued_through, ids[-1])
        for message in messages:
            if message.get("schema", "").startswith("edge-agent/meter-reading"):
                self.counters.values_queued += 1
            else:
                self.counters.statuses_queued += 1

    def _hold(self, messages: list[dict[str, Any]], exc: Exception) -> None:
        """Keep what the outbox refused for the next batch; beyond HELD_LIMIT drop the
        oldest meter values first (counted and logged), status changes last."""
        new = len(messages) - self._held_before
        self._held_before = 0
        self.counters.outbox_refused += new
        held, dropped = trim_held(messages)
        self.counters.outbox_dropped += dropped
        self._held = held
        self.counters.last_error = f"plant-data outbox refused {len(messages)}: {exc}"
        if new or dropped:
            log.error(
                "The plant-data outbox refused plant data; held and put again with the next.",
                extra={"held": len(held), "dropped": dropped, "error": str(exc)},
            )

    def state(self) -> dict[str, Any]:
        """Every meter's and tracker's state, as the file holds it."""
        return {
            "schema": STATE_SCHEMA,
            "saved_ns": time.time_ns(),
            "meters": {
                key: {**bound.meter.state(), "source": source_of(bound.definition, self.config)}
                for key, bound in self.meters.items()
            },
            "downtime": {asset: t.state() for asset, t in self.downtime.items()},
        }

    def refusals(self) -> dict[str, dict[str, int]]:
        """meter (or ``downtime:ASSET``) → refusal reason → count."""
        found = {key: dict(b.meter.refused) for key, b in self.meters.items() if b.meter.refused}
        for asset_id, tracker in self.downtime.items():
            if tracker.refused:
                found[f"downtime:{asset_id}"] = dict(tracker.refused)
        return {key: {str(r): n for r, n in counts.items()} for key, counts in found.items()}

    def summary(self) -> dict[str, Any]:
        """What health shows."""
        counters = self.counters
        return {
            "meters": len(self.meters),
            "assets_with_downtime": len(self.downtime),
            "readings_used": counters.readings_used,
            "values_queued": counters.values_queued,
            "statuses_queued": counters.statuses_queued,
            "outbox_refused": counters.outbox_refused,
            "outbox_held": len(self._held),
            "outbox_dropped": counters.outbox_dropped,
            "state_errors": counters.state_errors,
            "meter_errors": counters.meter_errors,
            "last_error": counters.last_error,
            "refused": self.refusals(),
            "silent": self.silence.silent(
                {key: bound.definition.max_gap for key, bound in self.meters.items()}
            ),
        }
