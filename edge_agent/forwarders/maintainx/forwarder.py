"""The site's direct-to-MaintainX forwarder: drains the outbox through :func:`apply_alert`.

Items are leased oldest first and applied one after another (the shared
:class:`~edge_agent.forwarders.delivery.DeliveryLoop`, ``ordered``, with this forwarder as
its sink), so events of one episode reach MaintainX in order. An item is acked only after
MaintainX confirmed it (2xx) and the ledger recorded it. On a failure the item and
everything leased after it go back (``nack``), keeping their place, and the forwarder waits:

- 5xx, refused connections, timeouts, rate limits: exponential backoff with jitter;
- 400 (and other final 4xx): the item goes to the dead letters with MaintainX's error body;
- 401/403: sending stops, everything is kept, health shows ``credentials_rejected`` until
  :meth:`MaintainXForwarder.reload_credentials` is called (the service does on reload).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final, cast

from edge_agent.alerts import AlertMessage, alert_problem
from edge_agent.common.backoff import Backoff
from edge_agent.common.retention import PRUNE_INTERVAL_S
from edge_agent.common.time_units import NS_PER_S
from edge_agent.config.models import MaintainX, SiteConfig
from edge_agent.config.secrets import SecretError, resolve
from edge_agent.errors import EdgeAgentError
from edge_agent.forwarders.delivery import (
    DeadLetter,
    Delivered,
    DeliveryLoop,
    DestinationHold,
    Retry,
    Words,
)
from edge_agent.forwarders.maintainx.journal import log_work_order
from edge_agent.forwarders.maintainx.status_poller import (
    PollerStatus,
    StatusPoller,
    record_delivery,
)
from edge_agent.forwarders.workorder_status import WorkOrderTracker
from edge_agent.interfaces import ForwarderStatus, OutboxItem
from edge_agent.maintainx.client import MaintainXClient
from edge_agent.maintainx.errors import (
    RETRYABLE,
    BadRequest,
    CredentialsRejected,
    MaintainXError,
    Misconfigured,
    OutcomeUnknown,
    RateLimited,
)
from edge_agent.maintainx.ledger import LedgerError, SqliteLedger, ThreadedLedger
from edge_agent.maintainx.sync import SyncResult, apply_alert, settle_s
from edge_agent.outbox.store import Outbox, OutboxError
from edge_agent.redaction import redact

log = logging.getLogger(__name__)

_WORDS: Final = Words(
    lease_failed="Cannot lease from the outbox.",
    ack_failed="MaintainX forwarder storage error.",
    nack_failed="Cannot release outbox items.",
)

LEDGER_FILE: Final = "workorders.sqlite"
_REASON_CHARS: Final = 2000
PROBE_INTERVAL_S: Final = 30.0
"""While idle and not connected, MaintainX is probed at most this often."""
MISCONFIGURED_RETRY_S: Final = 60.0
"""While MaintainX refuses every request alike (a wrong base_url), how often one request
tries again; a reload tries at once."""
MAX_INTERNAL_ERRORS: Final = 10
"""An item that makes the forwarder itself fail (a bug, not MaintainX) this many times is
dead-lettered so that it cannot hold back every item behind it. MaintainX and network
failures are retried forever."""


@dataclass
class MaintainXStatus(ForwarderStatus):
    """The direct forwarder's status: the common fields and what became of each alert."""

    created: int = 0
    found: int = 0
    """Work orders found already made (a redelivered alert): nothing created twice."""
    updates: int = 0
    """Escalations and comments on a work order already made."""
    skipped: int = 0
    requests: int = 0
    """HTTP requests sent, as of the last delivery."""
    rate_limited: int = 0
    pacing_waits: int = 0
    status_polls: PollerStatus | None = None
    """The polls of the rules' open work orders (the alarm lifecycle), when enabled."""


class InvalidMessage(EdgeAgentError, ValueError):
    """An outbox payload that is not an alert message this forwarder can apply."""


def check_message(payload: Mapping[str, Any]) -> AlertMessage:
    """The payload as an :class:`AlertMessage`, or :class:`InvalidMessage` saying what is
    wrong (such an item can never be delivered: it is dead-lettered, not retried). The check
    is the alert schema's own (:func:`edge_agent.wire.alert.alert_problem`), the one the hub
    runs: a message the direct forwarder takes is one the hub would take."""
    problem = alert_problem(dict(payload))
    if problem is not None:
        raise InvalidMessage(problem)
    return cast(AlertMessage, payload)


def _reason(exc: MaintainXError) -> str:
    body = exc.body if exc.body is not None else ""
    text = body if isinstance(body, str) else json.dumps(body)
    # Redacted before it is cut: a cut through a secret would leave a prefix no redaction
    # recognises.
    return redact(f"MaintainX HTTP {exc.status}: {text}")[:_REASON_CHARS]


class MaintainXForwarder:
    """:class:`edge_agent.interfaces.Forwarder` that creates and updates work orders directly.

    Construction does no I/O. ``run`` opens the ledger (``state_dir/workorders.sqlite``),
    resolves the API key and drains the outbox until cancelled.
    """

    def __init__(
        self,
        config: MaintainX,
        site: SiteConfig,
        outbox: Outbox,
        state_dir: Path,
        base_dir: Path,
        *,
        batch_size: int = 20,
        idle_s: float = 0.5,
        work_orders: WorkOrderTracker | None = None,
        status_poll_s: float | None = None,
    ) -> None:
        self.config = config
        self.site = site
        self.outbox = outbox
        self.state_dir = Path(state_dir)
        self.base_dir = Path(base_dir)
        self.batch_size = batch_size
        self.idle_s = idle_s
        self.status = MaintainXStatus()
        self.client: MaintainXClient | None = None
        self.ledger: SqliteLedger | None = None
        self._reload = asyncio.Event()
        self._hold = DestinationHold(self.status, log)
        self._loop = DeliveryLoop(
            self,
            outbox,
            self.status,
            log,
            _WORDS,
            backoff=Backoff.from_config(config.backoff),
            lease_retry_s=lambda: self._backoff.next_delay(),
            prefetch=batch_size,
            ordered=True,
        )
        self._pending_config: MaintainX | None = None
        self._last_probe = -PROBE_INTERVAL_S
        self._next_prune = 0.0
        # Direct mode's side of the alarm lifecycle: the rules' work orders and their
        # statuses, polled (see status_poller).
        self.work_orders = work_orders
        self.poller: StatusPoller | None = None
        if work_orders is not None:
            self.poller = self._build_poller(work_orders, status_poll_s)
            self.status.status_polls = self.poller.status

    @property
    def _backoff(self) -> Backoff:
        return self._loop.backoff

    # ------------------------------------------------------------------ Forwarder

    async def run(self) -> None:
        """Drain the outbox until cancelled. Never raises for MaintainX, network or disk
        failures: they are logged, shown in ``status`` and retried."""
        polls = None if self.poller is None else asyncio.create_task(self.poller.run())
        try:
            while True:
                if self.ledger is None and not await self._open_ledger():
                    await self._sleep_or_reload(self._backoff.next_delay())
                    continue
                await self._prune_ledger_if_due()
                if self.status.credentials_rejected or self._reload.is_set():
                    await self._wait_for_reload()
                if self.client is None:
                    if not await self._open_client():
                        await self._wait_for_reload()
                        continue
                    await self._probe()
                    continue
                pause = await self._loop.cycle()
                if pause is None:
                    if not self.status.connected and self._probe_due():
                        await self._probe()
                    await self._idle()
                elif pause > 0:
                    await self._sleep_or_reload(pause)
        finally:
            if polls is not None:
                polls.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await polls
            self._release_leases()

    async def close(self) -> None:
        """Close the HTTP client and the ledger (leased items are released)."""
        self._release_leases()
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()
        ledger, self.ledger = self.ledger, None
        if ledger is not None:
            await asyncio.to_thread(ledger.close)
        self.status.connected = False

    def wake(self) -> None:
        """New items are in the outbox: look now rather than after the idle wait (the
        service calls this after a put; call on the event loop)."""
        self._loop.wake.set()

    def reload_credentials(self, config: MaintainX | None = None) -> None:
        """Re-read the API key (from ``config`` if given, else the current one) and resume
        sending. Called by the service when the configuration is reloaded."""
        if config is not None:
            self._pending_config = config
        self._reload.set()

    # ------------------------------------------------------------------ delivering

    def free(self) -> int:
        """One at a time, and none while the client is gone (credentials rejected)."""
        return 1 if self.client is not None and not self.status.credentials_rejected else 0

    async def submit(self, item: OutboxItem) -> bool:
        """Apply one item and report its outcome before returning: the loop acks it (only
        after MaintainX confirmed and the ledger recorded it: if this ack is lost, the
        redelivered item is a recorded duplicate and does nothing) before the next one."""
        report = self._loop.report
        try:
            message = check_message(item.payload)
            result = await self._apply(message)
        except InvalidMessage as exc:
            report(self._dead_letter(item, f"invalid alert message: {exc}"))
        except CredentialsRejected as exc:
            report(Retry(item.id, "credentials rejected"))
            await self._loop.settle()  # kept (nacked) before health says why
            await self._credentials_rejected(exc)
        except Misconfigured as exc:
            self._misconfigured(exc)
            report(Retry(item.id, "MaintainX settings refused", delay=MISCONFIGURED_RETRY_S))
        except BadRequest as exc:
            self.status.connected = True  # MaintainX answered, it refused the request
            report(self._dead_letter(item, _reason(exc)))
        except RETRYABLE as exc:
            report(Retry(item.id, str(exc), delay=self._retry_delay(exc)))
        except (LedgerError, OutboxError) as exc:
            log.error("MaintainX forwarder storage error.", extra={"error": str(exc)})
            report(Retry(item.id, str(exc), delay=self._retry_delay(exc)))
        except Exception as exc:  # a bug must not stop delivery of everything else
            log.exception("MaintainX forwarder failed on an item.", extra={"item": item.id})
            if item.attempts + 1 >= MAX_INTERNAL_ERRORS:
                report(self._dead_letter(item, f"internal error: {exc!r}"))
            else:
                report(Retry(item.id, repr(exc), delay=self._retry_delay(exc)))
        else:
            report(Delivered(item.id, partial(self._delivered, message, result)))
        return True

    async def pump(self) -> int:
        return 0

    def take_writes(self) -> Callable[[], int] | None:
        return None

    def ack_failed(self, exc: OutboxError) -> float:
        """The ack did not reach the disk: the item and those after it were put back."""
        return self._retry_delay(exc)

    async def _apply(self, message: AlertMessage) -> SyncResult:
        assert self.client is not None and self.ledger is not None
        asset_id, location_id = self._asset_ids(message)
        return await apply_alert(
            self.client,
            ThreadedLedger(self.ledger),
            message,
            asset_id=asset_id,
            location_id=location_id,
        )

    def _asset_ids(self, message: AlertMessage) -> tuple[int | None, int | None]:
        """The MaintainX asset and location: from the message, else from the site file."""
        payload = cast(Mapping[str, Any], message)
        asset = payload.get("asset") or {}
        configured = self.site.assets.get(str(asset.get("id", "")))
        asset_id = asset.get("maintainx_id")
        if asset_id is None and configured is not None:
            asset_id = configured.maintainx_id
        location_id = (payload.get("work_order") or {}).get("location_id")
        if location_id is None and configured is not None:
            location_id = configured.location_id
        return asset_id, location_id

    def _misconfigured(self, exc: Misconfigured) -> None:
        """Every request is refused alike: hold every alert (none is the request's fault),
        say so in health, and log it once per episode, not once per item."""
        self.status.failed += 1
        self.status.connected = False
        self.status.last_error = _reason(exc)
        self._hold.hold(
            f"MaintainX settings refused: {exc}",
            "MaintainX refuses every request: the forwarding settings are wrong. Every "
            "alert is held until the site file is fixed and reloaded.",
            {"error": str(exc), "status": exc.status},
        )

    def _delivered(self, message: AlertMessage, result: SyncResult) -> None:
        """MaintainX confirmed it and the ack is on disk."""
        self._hold.release("MaintainX accepts requests again; delivering what was held.")
        self.status.connected = True
        self.status.last_error = None
        status = self.status
        if result.action == "created":
            status.created += 1
        elif result.action == "found":
            status.found += 1
        elif result.action in ("escalated", "commented", "reopened"):
            status.updates += 1
        else:
            status.skipped += 1
        if self.client is not None:
            status.requests = self.client.requests_sent
            status.rate_limited = self.client.rate_limited
            status.pacing_waits = self.client.pacer.waits
        log_work_order(message, result)
        if self.work_orders is not None:
            record_delivery(self.work_orders, message, result)

    def _build_poller(self, tracker: WorkOrderTracker, interval_s: float | None) -> StatusPoller:
        return StatusPoller(
            tracker,
            lambda: None if self.status.credentials_rejected else self.client,
            self._credentials_rejected,
            rate_limit_per_min=self.config.rate_limit,
            backoff=Backoff.from_config(self.config.backoff),
            interval_s=interval_s,
        )

    def _dead_letter(self, item: OutboxItem, reason: str) -> DeadLetter:
        def logged() -> None:
            self.status.last_error = reason
            log.error(
                "Alert refused by MaintainX; moved to the dead letters.",
                extra={"item_id": item.id, "reason": reason},
            )

        return DeadLetter(item.id, reason, logged)

    def _retry_delay(self, exc: Exception) -> float:
        self.status.failed += 1
        self.status.last_error = str(exc)
        if isinstance(exc, RateLimited):
            self.status.connected = True
            return exc.reset_s
        if isinstance(exc, MaintainXError) and not isinstance(exc, OutcomeUnknown):
            self.status.connected = exc.status is not None  # a 5xx still means reachable
        else:
            self.status.connected = False
        delay = self._backoff.next_delay()
        if isinstance(exc, MaintainXError) and self.client is not None:
            # A request that may still land has landed before its lookup (a second work order).
            delay = max(delay, settle_s(exc, self.client.timeout_s))
        log.warning(
            "MaintainX delivery failed; retrying.",
            extra={"error": str(exc), "retry_in_s": round(delay, 3)},
        )
        return delay

    # ------------------------------------------------------------------ connection

    async def _open_ledger(self) -> bool:
        try:
            self.ledger = await asyncio.to_thread(SqliteLedger, self.state_dir / LEDGER_FILE)
        except (LedgerError, OutboxError) as exc:
            self.status.last_error = str(exc)
            log.error("Cannot open the work order ledger.", extra={"error": str(exc)})
            return False
        return True

    def stored_bytes(self) -> int:
        """The ledger's rows, counted against ``storage.max_bytes`` with the outbox."""
        return self.ledger.data_bytes if self.ledger is not None else 0

    async def _prune_ledger_if_due(self) -> None:
        """At start and hourly: forget what the ledger applied longer ago than
        ``storage.ledger_retention`` (see :mod:`edge_agent.common.retention`)."""
        if self.ledger is None or time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_INTERVAL_S
        ledger = self.ledger
        retention = self.site.storage.ledger_retention

        def prune() -> int:
            # Counted back from the newest row when the clock is ahead of it: a wall clock
            # set years ahead (a wrong date at boot) must not forget every work order.
            now = time.time_ns()
            newest = ledger.newest_ns()
            return ledger.prune(min(now, now if newest is None else newest) - retention)

        try:
            removed = await asyncio.to_thread(prune)
        except (LedgerError, OutboxError) as exc:
            log.error("Pruning the work order ledger failed.", extra={"error": str(exc)})
            return
        if removed:
            log.info(
                "Work order ledger pruned.",
                extra={"rows": removed, "bytes": self.ledger.data_bytes},
            )

    def _probe_due(self) -> bool:
        return time.monotonic() - self._last_probe >= PROBE_INTERVAL_S

    async def _probe(self) -> None:
        """One cheap request (``GET /workorders?limit=1``) so that health shows whether
        MaintainX is reachable and the key accepted before any alert needs sending."""
        assert self.client is not None
        self._last_probe = time.monotonic()
        try:
            async for _ in self.client.list_work_orders(limit=1, max_pages=1):
                break
        except CredentialsRejected as exc:
            await self._credentials_rejected(exc)
        except Misconfigured as exc:
            self._misconfigured(exc)
        except MaintainXError as exc:
            self.status.connected = False
            self.status.last_error = str(exc)
            log.warning("MaintainX is not reachable.", extra={"error": str(exc)})
        else:
            self.status.connected = True
            self.status.last_error = None
            self._hold.release(None)

    async def _open_client(self) -> bool:
        if self._pending_config is not None:
            self.config, self._pending_config = self._pending_config, None
            self._loop.backoff = Backoff.from_config(self.config.backoff)
        try:
            api_key = resolve(self.config.api_key, self.base_dir)
        except SecretError as exc:
            self.status.connected = False
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

    async def _credentials_rejected(self, exc: CredentialsRejected) -> None:
        self.status.credentials_rejected = True
        self.status.connected = False
        self.status.failed += 1
        self.status.last_error = f"credentials rejected (HTTP {exc.status})"
        log.error(
            "MaintainX credentials rejected; sending stopped until the configuration is "
            "reloaded. Every alert is kept.",
            extra={"status": exc.status},
        )
        # Drop the client: the next one is built from the reloaded credentials.
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()

    async def _wait_for_reload(self) -> None:
        await self._reload.wait()
        self._reload.clear()
        old, self.client = self.client, None
        if old is not None:
            await old.aclose()
        if self.status.credentials_rejected:
            log.info("MaintainX credentials reloaded; resuming.")
        self.status.credentials_rejected = False

    async def _sleep_or_reload(self, seconds: float) -> None:
        """Wait, but wake early on a reload (new credentials are tried at once)."""
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
        # arrives as the reload event fires, and run() would not stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds)):
                await self._reload.wait()
        if self._reload.is_set():
            await self._wait_for_reload()

    async def _idle(self) -> None:
        """Wait ``idle_s`` for new items, ending early on :meth:`wake` or a reload."""
        await self._loop.wake.idle(self.idle_s, also=self._reload)
        if self._reload.is_set():
            await self._wait_for_reload()

    def _release_leases(self) -> None:
        self._loop.release_on_stop()
