"""What the plant-data forwarder sends, and what becomes of each item (issue 14): the
:class:`~edge_agent.forwarders.delivery.Sink` of its delivery loop. The connection (client,
ledger, credentials, reload) is :mod:`edge_agent.forwarders.maintainx.plant`'s; the rules
are in its module doc."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from edge_agent.config.models import SiteConfig
from edge_agent.forwarders.delivery import DeadLetter, Delivered, DeliveryLoop, Outcome, Retry
from edge_agent.interfaces import ForwarderStatus, OutboxItem
from edge_agent.maintainx.backdate import reduce_stale
from edge_agent.maintainx.client import MaintainXClient
from edge_agent.maintainx.errors import (
    BadRequest,
    CredentialsRejected,
    MaintainXError,
    Misconfigured,
    NotFound,
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
    status_applied,
)
from edge_agent.maintainx.sync import settle_s
from edge_agent.outbox.store import OutboxError
from edge_agent.redaction import redact
from edge_agent.wire.plant import (
    ASSET_STATUS_SCHEMA,
    AssetStatusMessage,
    MeterReadingMessage,
    PlantMessageError,
    check_asset_status,
    check_meter_reading,
)

# The forwarder's logger: one name for the plant-data path's lines.
log = logging.getLogger("edge_agent.forwarders.maintainx.plant")

MISCONFIGURED_RETRY_S: Final = 60.0
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


class PlantSink:
    """Takes up to ``batch_size`` leased items and sends them at the next ``pump``.
    ``client``, ``ledger`` and ``loop`` are set by the forwarder."""

    def __init__(
        self,
        site: SiteConfig,
        status: PlantStatus,
        now_ns: Callable[[], int],
        batch_size: int = MAX_BATCH,
    ) -> None:
        self.site = site
        self.status = status
        self.now_ns = now_ns
        self.batch_size = max(1, min(batch_size, MAX_BATCH))
        self.client: MaintainXClient | None = None
        self.ledger: JsonMeterLedger | None = None
        self.loop: DeliveryLoop
        self._pending: list[OutboxItem] = []
        self._holding = False  # a failure was reported: lease nothing until it is written

    def take_pending(self) -> list[OutboxItem]:
        """Items taken and not sent yet (given back when the forwarder stops)."""
        pending, self._pending = self._pending, []
        return pending

    def free(self) -> int:
        if self.client is None or self.status.credentials_rejected or self._holding:
            return 0
        return self.batch_size - len(self._pending)

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
        return self.loop.backoff.next_delay()

    # ------------------------------------------------------------------ delivering

    def _report(self, outcome: Outcome) -> None:
        self.loop.report(outcome)

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
        bodies: list[ReadingBody] = []
        try:
            for item, time_ns in sent:
                message = messages[item.id]
                bodies.append(ReadingBody(await self._meter_id(message), message.value, time_ns))
            accepted = await post_readings(self.client, bodies)
        except NotFound as exc:
            if len(bodies) == len(sent):  # the batch was refused, not a meter's creation
                batch = [(item, body) for (item, _), body in zip(sent, bodies, strict=True)]
                return await self._meter_gone(exc, batch)
            return self._refused_batch(exc, [item for item, _ in sent])
        except BadRequest as exc:
            return self._refused_batch(exc, [item for item, _ in sent])
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

    def _refused_batch(self, exc: BadRequest, items: list[OutboxItem]) -> bool:
        """MaintainX refused the batch: the reading it names goes to the dead letters and
        the others are sent again (False: nothing newer leaves before them); a refusal
        naming none dead-letters the batch."""
        self.status.connected = True
        index = refused_index(exc.body)
        if index is not None and 0 <= index < len(items):
            self._dead_letter(items[index], _reason(exc))
            for position, item in enumerate(items):
                if position != index:
                    self._report(Retry(item.id, "sent again without a refused reading"))
            self._holding = True
            return False
        for item in items:
            self._dead_letter(item, _reason(exc))
        return True

    async def _meter_gone(self, exc: NotFound, batch: list[tuple[OutboxItem, ReadingBody]]) -> bool:
        """A 404 on a batch: a meter of it is not (or no longer) in MaintainX. Each meter of
        the batch is looked at; the readings of one that is gone go to the dead letters
        (the reason names it), the others are sent again. First, the meters collection
        itself must answer: a wrong ``base_url`` 404s everything and loses nothing."""
        assert self.client is not None
        try:
            await self.client.request("GET", "meters", params=[("limit", "1")])
        except MaintainXError as probe:
            delay = self._retry_delay(probe)
            for item, _ in batch:
                self._report(Retry(item.id, str(probe), delay=delay))
            self._holding = True
            return False
        self.status.connected = True
        gone: set[int] = set()
        for meter_id in sorted({body.meter_id for _, body in batch}):
            try:
                await self.client.request("GET", f"meters/{meter_id}")
            except NotFound:
                gone.add(meter_id)
            except MaintainXError:
                pass  # not known now: its readings are tried again with the others
        for item, body in batch:
            if body.meter_id in gone:
                self._dead_letter(item, f"MaintainX meter {body.meter_id} not found: {exc}")
            else:
                self._report(Retry(item.id, "sent again without a missing meter's readings"))
        # What is sent again leaves before anything newer (a counter's values in order).
        self._holding = True
        return False

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
            assert self.client is not None
            if await status_applied(self.client, asset_id, message):
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
        delay = self.loop.backoff.next_delay()
        if isinstance(exc, MaintainXError) and self.client is not None:
            delay = max(delay, settle_s(exc, self.client.timeout_s))
        log.warning(
            "Plant data delivery failed; retrying.",
            extra={"error": str(exc), "retry_in_s": round(delay, 3)},
        )
        return delay
