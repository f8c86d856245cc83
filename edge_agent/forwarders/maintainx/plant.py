"""The site's direct forwarder of plant data (issue 14): meter readings and asset status
changes from the plant-data outbox to MaintainX.

The shared :class:`~edge_agent.forwarders.delivery.DeliveryLoop` leases up to
:data:`~edge_agent.maintainx.meters.MAX_BATCH` items; this sink takes them (``submit``) and
sends them at the next cycle (``pump``), in their order: consecutive readings as one
``POST /meterreadings`` batch (paced on that endpoint's own 100 / 60 s bucket by the
client), each status change as one ``POST /assets/{id}/status``. An item leaves the outbox
only once MaintainX confirmed it.

- A meter without ``maintainx_meter_id`` is created once (``maintainx/meters.py``: the ledger
  ``maintainx-meters.json`` under the state directory, a lookup by name first) with its
  triggers, before its first reading is sent.
- Readings older than MaintainX's 3-day window are reduced first (``maintainx/backdate.py``):
  the gauge history dropped is counted and logged, never silent.
- A status change is looked up on the asset before it is posted: a post whose answer was
  lost (a timeout, a crash) is not made twice. Readings have no such lookup in the API: a
  batch whose answer was lost is sent again (at least once; the same values and dates).
- A failure keeps the item and every one after it (order holds for status changes): 5xx,
  timeouts and 429s back off; 401/403 stop sending until a reload; a 400 that names one
  reading dead-letters that reading and sends the rest again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from edge_agent.common.backoff import Backoff
from edge_agent.common.time_units import NS_PER_S
from edge_agent.config.models import MaintainX, SiteConfig
from edge_agent.config.secrets import SecretError, resolve
from edge_agent.forwarders.delivery import (
    DeadLetter,
    Delivered,
    DeliveryLoop,
    Outcome,
    Retry,
    Words,
)
from edge_agent.interfaces import ForwarderStatus, OutboxItem
from edge_agent.maintainx.backdate import reduce_stale
from edge_agent.maintainx.client import MaintainXClient
from edge_agent.maintainx.errors import (
    BadRequest,
    CredentialsRejected,
    MaintainXError,
    Misconfigured,
    OutcomeUnknown,
    RateLimited,
)
from edge_agent.maintainx.meters import (
    MAX_BATCH,
    JsonMeterLedger,
    MeterLedgerError,
    ReadingBody,
    ensure_meter,
    ensure_triggers,
    post_asset_status,
    post_readings,
    refused_index,
)
from edge_agent.maintainx.sync import settle_s
from edge_agent.outbox.store import Outbox, OutboxError
from edge_agent.redaction import redact
from edge_agent.wire.alert import WireError, wire_time_ns
from edge_agent.wire.plant import (
    ASSET_STATUS_SCHEMA,
    AssetStatusMessage,
    MeterReadingMessage,
    PlantMessageError,
    check_asset_status,
    check_meter_reading,
)

log = logging.getLogger(__name__)

LEDGER_FILE: Final = "maintainx-meters.json"
MISCONFIGURED_RETRY_S: Final = 60.0
_WORDS: Final = Words(
    lease_failed="Cannot lease from the plant-data outbox.",
    ack_failed="Plant-data forwarder storage error.",
    nack_failed="Cannot release plant-data outbox items.",
)
_REASON_CHARS: Final = 2000

PlantMessage = MeterReadingMessage | AssetStatusMessage


@dataclass
class PlantStatus(ForwarderStatus):
    """The plant-data forwarder's status: the common fields and what was sent."""

    readings_sent: int = 0
    batches: int = 0
    statuses_sent: int = 0
    statuses_found: int = 0
    """Status changes MaintainX already had (a post whose answer was lost): not repeated."""
    stale_gauges_dropped: int = 0
    """Gauge values older than MaintainX's 3-day window: not sent (logged)."""
    stale_superseded: int = 0
    redated: int = 0
    requests: int = 0
    rate_limited: int = 0


def parse_plant(payload: Any) -> PlantMessage:
    """An outbox payload as a plant data message (raises PlantMessageError)."""
    if isinstance(payload, dict) and payload.get("schema") == ASSET_STATUS_SCHEMA:
        return check_asset_status(payload)
    return check_meter_reading(payload)


def _reason(exc: MaintainXError) -> str:
    return redact(f"MaintainX HTTP {exc.status}: {exc.body!r}")[:_REASON_CHARS]


class PlantForwarder:
    """:class:`edge_agent.interfaces.Forwarder` of the plant-data outbox, straight to
    MaintainX. Construction does no I/O; ``now_ns`` is the wall clock (tests move it)."""

    def __init__(
        self,
        config: MaintainX,
        site: SiteConfig,
        outbox: Outbox,
        state_dir: Path,
        base_dir: Path,
        *,
        idle_s: float = 1.0,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.site = site
        self.outbox = outbox
        self.state_dir = Path(state_dir)
        self.base_dir = Path(base_dir)
        self.idle_s = idle_s
        self.now_ns = now_ns
        self.status = PlantStatus()
        self.client: MaintainXClient | None = None
        self.ledger: JsonMeterLedger | None = None
        self._reload = asyncio.Event()
        self._pending: list[OutboxItem] = []
        self._holding = False  # a failure was reported: lease nothing until it is written
        self._loop = DeliveryLoop(
            self,
            outbox,
            self.status,
            log,
            _WORDS,
            backoff=Backoff.from_config(config.backoff),
            lease_retry_s=lambda: self._loop.backoff.next_delay(),
        )

    # ------------------------------------------------------------------ Forwarder

    async def run(self) -> None:
        """Drain the plant-data outbox until cancelled; MaintainX, network and disk
        failures are logged, shown in ``status`` and retried."""
        try:
            while True:
                if self.ledger is None and not await self._open_ledger():
                    await self._sleep_or_reload(self._loop.backoff.next_delay())
                    continue
                if self.status.credentials_rejected or self._reload.is_set():
                    await self._loop.settle(pausing=False)  # kept (nacked) before waiting
                    await self._wait_for_reload()
                if self.client is None and not self._open_client():
                    await self._wait_for_reload()
                    continue
                pause = await self._loop.cycle()
                if pause is None:
                    await self._loop.wake.idle(self.idle_s, also=self._reload)
                elif pause > 0:
                    await self._sleep_or_reload(pause)
        finally:
            self._release()

    async def close(self) -> None:
        self._release()
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()
        self.status.connected = False

    def wake(self) -> None:
        self._loop.wake.set()

    def reload_credentials(self) -> None:
        self._reload.set()

    def stored_bytes(self) -> int:
        return 0

    # ------------------------------------------------------------------ the sink

    def free(self) -> int:
        if self.client is None or self.status.credentials_rejected or self._holding:
            return 0
        return MAX_BATCH - len(self._pending)

    async def submit(self, item: OutboxItem) -> bool:
        """Taken; sent at the next cycle's :meth:`pump`, with the items leased with it."""
        self._pending.append(item)
        return True

    async def pump(self) -> int:
        if not self._pending:
            self._holding = False  # what a failure reported is written by now
            return 0
        items, self._pending = self._pending, []
        await self._deliver(items)
        return len(items)

    def take_writes(self) -> Callable[[], int] | None:
        return None

    def ack_failed(self, exc: OutboxError) -> float:
        return self._loop.backoff.next_delay()

    # ------------------------------------------------------------------ delivering

    def _report(self, outcome: Outcome) -> None:
        self._loop.report(outcome)

    async def _deliver(self, items: Sequence[OutboxItem]) -> None:
        parsed: list[tuple[OutboxItem, PlantMessage]] = []
        for item in items:
            try:
                parsed.append((item, parse_plant(item.payload)))
            except PlantMessageError as exc:
                self._dead_letter(item, f"invalid plant data message: {exc}")
        index = 0
        while index < len(parsed):
            item, message = parsed[index]
            if isinstance(message, AssetStatusMessage):
                end = index + 1
                done = await self._send_status(item, message)
            else:
                end = index
                while end < len(parsed) and isinstance(parsed[end][1], MeterReadingMessage):
                    end += 1
                run = [(i, m) for i, m in parsed[index:end] if isinstance(m, MeterReadingMessage)]
                done = await self._send_readings(run)
            if not done:  # kept, and everything after it, in order
                for later, _ in parsed[end:]:
                    self._report(Retry(later.id, "an earlier item is retried"))
                return
            index = end

    async def _send_readings(self, run: list[tuple[OutboxItem, MeterReadingMessage]]) -> bool:
        """One batch; False when it is retried later (reported)."""
        assert self.client is not None
        reduction = reduce_stale(run, self.now_ns())
        for item in reduction.superseded + reduction.gauges_dropped:
            self._report(Delivered(item.id))
        self._count_stale(reduction.superseded, reduction.gauges_dropped, run)
        self.status.redated += reduction.redated
        messages = {item.id: message for item, message in run}
        sent = reduction.send
        if not sent:
            return True
        try:
            bodies = [
                ReadingBody(await self._meter_id(messages[i.id]), messages[i.id].value, t)
                for i, t in sent
            ]
            accepted = await post_readings(self.client, bodies)
        except BadRequest as exc:
            self._refused_batch(exc, [item for item, _ in sent])
            return True
        except (MaintainXError, MeterLedgerError) as exc:
            delay = self._retry_delay(exc)
            for item, _ in sent:
                self._report(Retry(item.id, str(exc), delay=delay))
            self._holding = True
            return False
        for item, _ in sent:
            self._report(Delivered(item.id))
        self._delivered()
        self.status.readings_sent += accepted
        self.status.batches += 1
        return True

    def _count_stale(
        self,
        superseded: list[OutboxItem],
        dropped: list[OutboxItem],
        run: list[tuple[OutboxItem, MeterReadingMessage]],
    ) -> None:
        self.status.stale_superseded += len(superseded)
        if not dropped:
            return
        self.status.stale_gauges_dropped += len(dropped)
        gone = {item.id for item in dropped}
        meters = sorted({m.meter for item, m in run if item.id in gone})
        log.warning(
            "Gauge readings older than MaintainX's 3-day window are not sent.",
            extra={"count": len(dropped), "meters": meters},
        )

    def _refused_batch(self, exc: BadRequest, items: list[OutboxItem]) -> None:
        """MaintainX refused the batch: the reading it names goes to the dead letters and
        the others are sent again; a refusal naming none dead-letters the batch."""
        self.status.connected = True
        index = refused_index(exc.body)
        if index is not None and 0 <= index < len(items):
            self._dead_letter(items[index], _reason(exc))
            for position, item in enumerate(items):
                if position != index:
                    self._report(Retry(item.id, "sent again without a refused reading"))
            return
        for item in items:
            self._dead_letter(item, _reason(exc))

    async def _meter_id(self, message: MeterReadingMessage) -> int:
        """The MaintainX meter of a reading, created once (with its triggers) if needed."""
        assert self.client is not None and self.ledger is not None
        meter_id = message.maintainx_meter_id
        if meter_id is None:
            asset_id = message.asset.maintainx_id
            if asset_id is None:
                configured = self.site.assets.get(message.asset.id)
                asset_id = configured.maintainx_id if configured is not None else None
            meter_id = await ensure_meter(
                self.client, self.ledger, message.meter, message.meter_spec, asset_id
            )
        await ensure_triggers(self.client, self.ledger, meter_id, message.meter_spec)
        return meter_id

    async def _send_status(self, item: OutboxItem, message: AssetStatusMessage) -> bool:
        assert self.client is not None
        asset_id = message.asset.maintainx_id
        if asset_id is None:
            configured = self.site.assets.get(message.asset.id)
            asset_id = configured.maintainx_id if configured is not None else None
        if asset_id is None:
            self._dead_letter(item, f"asset {message.asset.id} has no maintainx_id")
            return True
        try:
            if await self._status_applied(asset_id, message):
                self.status.statuses_found += 1
            else:
                await post_asset_status(self.client, asset_id, message)
                self.status.statuses_sent += 1
        except BadRequest as exc:
            self.status.connected = True
            self._dead_letter(item, _reason(exc))
            return True
        except MaintainXError as exc:
            self._report(Retry(item.id, str(exc), delay=self._retry_delay(exc)))
            self._holding = True
            return False
        self._report(Delivered(item.id))
        self._delivered()
        return True

    async def _status_applied(self, asset_id: int, message: AssetStatusMessage) -> bool:
        """Whether the asset's current status in MaintainX is this change already."""
        assert self.client is not None
        data = await self.client.request("GET", f"assets/{int(asset_id)}")
        asset = data.get("asset") if isinstance(data, dict) else None
        current = asset.get("status") if isinstance(asset, dict) else None
        if not isinstance(current, dict) or current.get("status") != message.status:
            return False
        try:
            started = wire_time_ns(current.get("startedAt"), "startedAt")
        except WireError:
            return False
        return started // 1_000_000 == message.time_ns // 1_000_000

    # ------------------------------------------------------------------ outcomes

    def _dead_letter(self, item: OutboxItem, reason: str) -> None:
        def logged() -> None:
            self.status.last_error = reason
            log.error(
                "Plant data refused; moved to the dead letters.",
                extra={"item_id": item.id, "reason": reason},
            )

        self._report(DeadLetter(item.id, reason, logged))

    def _delivered(self) -> None:
        self.status.connected = True
        self.status.last_error = None
        self.status.holding = None
        if self.client is not None:
            self.status.requests = self.client.requests_sent
            self.status.rate_limited = self.client.rate_limited

    def _retry_delay(self, exc: Exception) -> float:
        """The pause before a retry; 401/403 and a refused configuration stop sending."""
        self.status.failed += 1
        self.status.last_error = str(exc)
        if isinstance(exc, CredentialsRejected):
            self.status.credentials_rejected = True
            self.status.connected = False
            log.error("MaintainX credentials rejected; plant data is kept until a reload.")
            return 0.0
        if isinstance(exc, Misconfigured):
            self.status.holding = f"MaintainX settings refused: {exc}"
            return MISCONFIGURED_RETRY_S
        if isinstance(exc, RateLimited):
            self.status.connected = True
            return exc.reset_s
        self.status.connected = isinstance(exc, MaintainXError) and not isinstance(
            exc, OutcomeUnknown
        )
        delay = self._loop.backoff.next_delay()
        if isinstance(exc, MaintainXError) and self.client is not None:
            delay = max(delay, settle_s(exc, self.client.timeout_s))
        log.warning(
            "Plant data delivery failed; retrying.",
            extra={"error": str(exc), "retry_in_s": round(delay, 3)},
        )
        return delay

    # ------------------------------------------------------------------ connection

    async def _open_ledger(self) -> bool:
        try:
            self.ledger = await asyncio.to_thread(JsonMeterLedger, self.state_dir / LEDGER_FILE)
        except MeterLedgerError as exc:
            self.status.last_error = str(exc)
            log.error("Cannot open the MaintainX meter ledger.", extra={"error": str(exc)})
            return False
        return True

    def _open_client(self) -> bool:
        try:
            api_key = resolve(self.config.api_key, self.base_dir)
        except SecretError as exc:
            self.status.last_error = f"MaintainX API key unavailable: {exc}"
            log.error("MaintainX API key unavailable.", extra={"error": str(exc)})
            return False
        self.client = MaintainXClient(
            self.config.base_url,
            api_key,
            self.config.organization_id,
            self.config.timeout / NS_PER_S,
            self.config.rate_limit,
        )
        return True

    async def _wait_for_reload(self) -> None:
        await self._reload.wait()
        self._reload.clear()
        old, self.client = self.client, None
        if old is not None:
            await old.aclose()
        self.status.credentials_rejected = False

    async def _sleep_or_reload(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds)):
                await self._reload.wait()
        if self._reload.is_set():
            await self._wait_for_reload()

    def _release(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            with contextlib.suppress(Exception):
                self.outbox.nack([item.id for item in pending], "forwarder stopped")
        self._loop.release_on_stop()
