"""The site's direct forwarder of plant data (issue 14): meter readings and asset status
changes from the plant-data outbox to MaintainX.

The shared :class:`~edge_agent.forwarders.delivery.DeliveryLoop` leases up to
:data:`~edge_agent.maintainx.meters.MAX_BATCH` items; its sink (:mod:`.plant_sink`) takes
them and sends them at the next cycle (``pump``), in their order: consecutive readings as one
``POST /meterreadings`` batch (paced on that endpoint's own 100 / 60 s bucket by the
client), each status change as one ``POST /assets/{id}/status``. An item leaves the outbox
only once MaintainX confirmed it.

- A meter without ``maintainx_meter_id`` is created once (``maintainx/meters.py``: the ledger
  ``maintainx-meters.json`` under the state directory, a lookup by name first) with its
  triggers, before its first reading is sent.
- The alert forwarder shares the key in direct mode: this one spends at most
  :data:`RATE_SHARE` of the key's general budget (alerts keep the rest), so a backlog of
  status changes never makes a work order wait for the next window.
- Readings older than MaintainX's 3-day window are reduced first (``maintainx/backdate.py``):
  the gauge history dropped is counted and logged, never silent.
- A status change is looked up on the asset before it is posted: a post whose answer was
  lost (a timeout, a crash) is not made twice. Readings have no such lookup in the API: a
  batch whose answer was lost is sent again (at least once; the same values and dates).
- A failure keeps the item and every one after it (order holds for status changes): 5xx,
  timeouts and 429s back off; 401/403 stop sending until a reload; a 400 that names one
  reading dead-letters that reading and sends the rest again; a 404 (a meter deleted in
  MaintainX) dead-letters that meter's readings and sends the rest again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from edge_agent.common.backoff import Backoff
from edge_agent.common.time_units import NS_PER_S
from edge_agent.config.models import MaintainX, SiteConfig
from edge_agent.config.secrets import SecretError, resolve
from edge_agent.forwarders.delivery import DeliveryLoop, Words
from edge_agent.forwarders.maintainx.plant_sink import PlantSink, PlantStatus
from edge_agent.maintainx.client import MaintainXClient
from edge_agent.maintainx.meters import (
    MAX_BATCH,
    PLANT_RATE_SHARE,
    JsonMeterLedger,
    MeterLedgerError,
)
from edge_agent.outbox.store import Outbox

log = logging.getLogger(__name__)

LEDGER_FILE: Final = "maintainx-meters.json"
RATE_SHARE: Final = PLANT_RATE_SHARE  # alerts keep the rest of the key's budget
_WORDS: Final = Words(
    lease_failed="Cannot lease from the plant-data outbox.",
    ack_failed="Plant-data forwarder storage error.",
    nack_failed="Cannot release plant-data outbox items.",
)


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
        batch_size: int = MAX_BATCH,
    ) -> None:
        self.config = config
        self.site = site
        self.outbox = outbox
        self.state_dir = Path(state_dir)
        self.base_dir = Path(base_dir)
        self.idle_s = idle_s
        self.status = PlantStatus()
        self.sink = PlantSink(site, self.status, now_ns, batch_size)
        self._reload = asyncio.Event()
        self._loop = DeliveryLoop(
            self.sink,
            outbox,
            self.status,
            log,
            _WORDS,
            backoff=Backoff.from_config(config.backoff),
            lease_retry_s=lambda: self._loop.backoff.next_delay(),
        )
        self.sink.loop = self._loop

    @property
    def client(self) -> MaintainXClient | None:
        return self.sink.client

    @property
    def ledger(self) -> JsonMeterLedger | None:
        return self.sink.ledger

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
        client, self.sink.client = self.sink.client, None
        if client is not None:
            await client.aclose()
        self.status.connected = False

    def wake(self) -> None:
        self._loop.wake.set()

    def reload_credentials(self) -> None:
        self._reload.set()

    def stored_bytes(self) -> int:
        return 0

    # ------------------------------------------------------------------ connection

    async def _open_ledger(self) -> bool:
        try:
            self.sink.ledger = await asyncio.to_thread(
                JsonMeterLedger, self.state_dir / LEDGER_FILE
            )
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
        self.sink.client = MaintainXClient(
            self.config.base_url,
            api_key,
            self.config.organization_id,
            self.config.timeout / NS_PER_S,
            self.config.rate_limit,
            rate_share=RATE_SHARE,
        )
        return True

    async def _wait_for_reload(self) -> None:
        await self._reload.wait()
        self._reload.clear()
        old, self.sink.client = self.sink.client, None
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
        pending = self.sink.take_pending()
        if pending:
            with contextlib.suppress(Exception):
                self.outbox.nack([item.id for item in pending], "forwarder stopped")
        self._loop.release_on_stop()
