"""Plant data in (meter readings, asset status changes), MaintainX meters and downtime out,
results back: the hub's side of ``{prefix}/{site}/meters`` and ``.../assets``.

:meth:`PlantConsumer.handle` takes one message and returns True when it may be acknowledged.
A message is one of:

- **invalid** (not JSON, too large, not the schema, another site's, an unknown site):
  counted by reason, logged, answered ``rejected`` on ``{prefix}/{site}/results/plant``
  when it names a valid site (the agent moves it to its dead letters), acknowledged;
- **seen before** (a resend): answered again from the store, nothing posted;
- **applied**: the reading posted in its site's next batch (:mod:`edge_agent.hub.plant_batches`;
  its meter and triggers created once per (site, meter) before, their ids in the store), or
  the status change posted (unless MaintainX shows it already: an earlier post whose answer
  was lost); recorded, then answered ``ok``;
- **refused by MaintainX for good** (400): recorded and answered ``rejected``;
- **deferred**: the site cannot be served now (its key refused, rate limited, MaintainX
  down): counted, acknowledged, *not answered*. The agent keeps it in its outbox and sends it
  again when its result timeout runs out: the agent's disk is where it waits, and no hub
  worker is held by a site that cannot be served.

A reading is acknowledged as soon as it is taken (checked, handed to a task): it is applied
in the background, so that a site's readings in flight (up to its agent's ``max_awaiting``)
share one request instead of one per hub worker; a hub that stops meanwhile leaves it
unanswered, and the agent sends it again. A status change is acknowledged once applied: only
the store or the broker failing returns False (the broker redelivers). A valid message whose
handling raises anything else is a poison message: counted, recorded and answered
``rejected``, acknowledged.

Each site's key serves that site only: the site comes from the topic, the message must name
the same site, and its meters, triggers and records are keyed by it.

Left as is: MaintainX has no idempotency key and no way to read readings back, so a request
whose answer was lost (a timeout, a hub killed between the POST and its record) may be posted
again when the agent resends: the same value at the same date, which a meter's history and a
PM trigger (counted from values, not from readings) take without harm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final, Protocol

from edge_agent.common.time_units import NS_PER_S
from edge_agent.hub.consumer import PublishFailed
from edge_agent.hub.plant_batches import POSTED, BatchAbandoned, ReadingBatcher
from edge_agent.hub.plant_checks import (
    PlantKind,
    PlantMessage,
    Refusal,
    check_plant,
    parse_plant_topic,
)
from edge_agent.hub.plant_counters import PlantStats
from edge_agent.hub.plant_maintainx import started_ns, unknown_meter
from edge_agent.hub.plant_store import REJECTED, HubMeterLedger, PlantStore, StatusRow
from edge_agent.hub.presence import UnknownSites
from edge_agent.hub.sites import CREDENTIALS_RETRY_S as KEY_HOLD_S
from edge_agent.hub.sites import SiteRuntime
from edge_agent.hub.store import StoreError, StoreRejected
from edge_agent.maintainx.errors import (
    BadRequest,
    CredentialsRejected,
    MaintainXError,
    Misconfigured,
    RateLimited,
)
from edge_agent.maintainx.meters import (
    ReadingBody,
    ensure_meter,
    ensure_triggers,
    post_asset_status,
    post_readings,
    status_applied,
)
from edge_agent.wire import topics
from edge_agent.wire.plant import (
    AssetStatusMessage,
    MeterReadingMessage,
)
from edge_agent.wire.plant_keys import asset_order_key
from edge_agent.wire.result import result_payload

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes, int, bool], Awaitable[None]]
"""Publish (topic, payload, qos, retain) and wait for the broker's acknowledgement; raises
:class:`~edge_agent.hub.consumer.PublishFailed`."""

MAX_TAKEN: Final = 20_000
"""Readings being applied at once, every site together; beyond, deferred to a resend."""


class _Busy(Exception):
    """Another replica holds the claim on this meter's creation: try again later."""


class Claims(Protocol):
    """The store's claims (:class:`~edge_agent.hub.store.HubStore`): in memory with SQLite
    (one replica), a table with PostgreSQL (replicas keep off each other's work)."""

    def claim(self, alert_id: str, owner: str, lease_ns: int) -> bool: ...

    def release(self, alert_id: str, owner: str) -> None: ...


class PlantConsumer:
    """Applies plant data messages for the configured sites (see the module doc)."""

    def __init__(
        self,
        *,
        prefix: str,
        sites: dict[str, SiteRuntime],
        plant: PlantStore,
        publish: Publish,
        max_message: int,
        unknown: UnknownSites | None = None,
        claims: Claims | None = None,
        owner: str = "hub",
        claim_lease_ns: int = 30 * NS_PER_S,
    ) -> None:
        self.prefix = prefix
        self.claims = claims
        self.owner = owner
        self.claim_lease_ns = claim_lease_ns
        self.sites = sites
        self.plant = plant
        self._publish = publish
        self.max_message = max_message
        self.stats = PlantStats()
        self.unknown = unknown or UnknownSites()
        self._batchers: dict[str, ReadingBatcher] = {}
        self._ready: dict[tuple[str, str], int] = {}  # (site, meter) → meter id, triggers done
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._taken: set[tuple[str, str]] = set()  # (site, id) of readings being applied
        self._failures: dict[str, Exception] = {}  # site → the last failure backed off for
        self._tasks: set[asyncio.Task[None]] = set()

    def handles(self, topic: str) -> bool:
        return parse_plant_topic(self.prefix, topic) is not None

    def sites_changed(self) -> None:
        """A reload changed the sites: a removed site's batches and meters are forgotten."""
        # A removed site's batcher ends with the batch it is posting, if any.
        self._batchers = {k: v for k, v in self._batchers.items() if k in self.sites}
        self._ready = {k: v for k, v in self._ready.items() if k[0] in self.sites}

    async def close(self) -> None:
        """Stop: readings being applied are abandoned (unanswered: the agents resend)."""
        for batcher in list(self._batchers.values()):
            await batcher.close()
        self._batchers.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ entry point

    async def handle(self, topic: str, payload: bytes) -> bool:
        """One message of a plant topic; True when it may be acknowledged."""
        parts = parse_plant_topic(self.prefix, topic)
        if parts is None:
            self.stats.siteless_rejections["bad_topic"] += 1
            log.warning("Plant data on a topic not ours.", extra={"topic": topic[:200]})
            return True
        site_id, kind = parts
        message = check_plant(
            site_id, kind, payload, known=frozenset(self.sites), max_bytes=self.max_message
        )
        if isinstance(message, Refusal):
            return await self._reject(site_id, kind, message)
        site = self.sites[site_id]
        counters = self.stats.site(site_id)
        if isinstance(message, MeterReadingMessage):
            counters.readings_received += 1
            return self._take(site, message)
        counters.statuses_received += 1
        return await self._apply(site, message)

    def _take(self, site: SiteRuntime, message: MeterReadingMessage) -> bool:
        """A reading is applied in the background, its message acknowledged now: the
        worker and the broker's in-flight window are free for the next, so the site's
        readings in flight (up to its agent's ``max_awaiting``) share one request. Nothing
        is lost: unanswered, the agent sends it again."""
        counters = self.stats.site(site.site_id)
        key = (site.site_id, message.id)
        if key in self._taken:
            counters.duplicates += 1  # a copy is being applied: its answer comes
            return True
        if len(self._taken) >= MAX_TAKEN:
            counters.deferred += 1
            return True
        self._taken.add(key)
        task = asyncio.create_task(self._apply_taken(site, message, key), name="hub-reading")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _apply_taken(
        self, site: SiteRuntime, message: MeterReadingMessage, key: tuple[str, str]
    ) -> None:
        try:
            await self._apply(site, message)  # False: logged; the agent sends it again
        finally:
            self._taken.discard(key)

    async def _apply(self, site: SiteRuntime, message: PlantMessage) -> bool:
        """Apply one checked message: True when it may be acknowledged (see the module
        doc)."""
        site_id = site.site_id
        counters = self.stats.site(site_id)
        # One copy at a time (a resend may arrive while the first is being posted): the
        # second finds the first's record.
        lock = (
            f"{site_id}\n{message.id}"
            if isinstance(message, MeterReadingMessage)
            else asset_order_key(site_id, message.asset.id)
        )
        try:
            async with self._lock(lock):
                action = await asyncio.to_thread(self.plant.action_of, site_id, message.id)
                if action is not None:
                    counters.duplicates += 1
                    await self._answer(site_id, message, action)
                    return True
                async with self._claim(f"plant:{lock}") as claimed:
                    if not claimed:  # another replica has it: its answer comes, or a resend
                        counters.deferred += 1
                    elif isinstance(message, MeterReadingMessage):
                        await self._reading(site, message)
                    else:
                        await self._status(site, message)
        except StoreRejected as exc:
            return await self._poison(site_id, message, exc)
        except (StoreError, PublishFailed) as exc:
            self.stats.store_errors += 1
            log.warning(
                "Plant data not acknowledged; the broker will redeliver it.",
                extra={"site": site_id, "id": message.id, "error": str(exc)},
            )
            return False
        except Exception as exc:
            return await self._poison(site_id, message, exc)
        return True

    # ------------------------------------------------------------------ applying

    async def _reading(self, site: SiteRuntime, message: MeterReadingMessage) -> None:
        counters = self.stats.site(site.site_id)
        client = site.plant_client
        if client is None or not site.usable() or counters.key_held(time.monotonic()):
            counters.deferred += 1
            return
        try:
            meter_id = message.maintainx_meter_id or await self._meter(site, message)
            body = ReadingBody(meter_id, message.value, message.time_ns)
            outcome = await self._batcher(site).post(body, message)
        except _Busy:
            counters.deferred += 1  # another replica is creating its meter
            return
        except BadRequest as exc:
            await self._refused(site, message, exc)
            return
        except (MaintainXError, BatchAbandoned) as exc:
            self._defer(site, message, exc)
            return
        counters.key_accepted()
        if outcome == POSTED:
            site.succeeded()
            counters.readings_posted += 1
        else:  # the 3-day rule: superseded by a later value, or a gauge too old to matter
            counters.not_sent[outcome] += 1
            log.warning(
                "Reading older than MaintainX's 3-day window: not sent.",
                extra={
                    "site": site.site_id,
                    "id": message.id,
                    "meter": message.meter,
                    "outcome": outcome,
                },
            )
        await asyncio.to_thread(
            self.plant.record, site.site_id, [message.id], "reading", outcome, None
        )
        await self._answer(site.site_id, message, outcome)

    async def _meter(self, site: SiteRuntime, message: MeterReadingMessage) -> int:
        """The MaintainX meter of (site, meter), and its triggers: from memory, else the
        store, else found by name or created, once (one at a time per meter)."""
        key = (site.site_id, message.meter)
        known = self._ready.get(key)
        if known is not None:
            return known
        assert site.plant_client is not None
        name = f"{site.site_id}/meter/{message.meter}"
        async with self._lock(name), self._claim(f"plant:{name}") as claimed:
            known = self._ready.get(key)
            if known is not None:
                return known
            if not claimed:
                raise _Busy(name)
            ledger = HubMeterLedger(self.plant, site.site_id)
            meter_id = await ensure_meter(
                site.plant_client,
                ledger,
                message.meter,
                message.meter_spec,
                message.asset.maintainx_id,
            )
            await ensure_triggers(site.plant_client, ledger, meter_id, message.meter_spec)
            self._ready[key] = meter_id
            self.stats.site(site.site_id).meters_ready += 1
            return meter_id

    def _batcher(self, site: SiteRuntime) -> ReadingBatcher:
        batcher = self._batchers.get(site.site_id)
        if batcher is None:

            async def post(batch: list[ReadingBody]) -> int:
                client = site.plant_client  # a reload may have replaced it
                if client is None:
                    raise MaintainXError("the site has no usable API key")
                try:
                    return await post_readings(client, batch)
                except Misconfigured as exc:
                    raise unknown_meter(exc) or exc from None

            batcher = self._batchers[site.site_id] = ReadingBatcher(post)  # type: ignore[arg-type]
        return batcher

    async def _status(self, site: SiteRuntime, message: AssetStatusMessage) -> None:
        counters = self.stats.site(site.site_id)
        row = StatusRow(
            site.site_id,
            message.asset.id,
            message.id,
            message.status,
            message.downtime_type,
            started_ns(message),
        )
        asset_id = message.asset.maintainx_id
        if asset_id is None:
            # Kept for the KPIs (the downtime happened); MaintainX has no asset to post to.
            await self._refused(site, message, None, "asset_not_linked", row)
            return
        client = site.plant_client
        if client is None or not site.usable() or counters.key_held(time.monotonic()):
            counters.deferred += 1
            return
        try:
            if await status_applied(client, asset_id, message):
                counters.statuses_found += 1
            else:
                await post_asset_status(client, asset_id, message)
        except BadRequest as exc:
            await self._refused(site, message, exc, status=row)
            return
        except MaintainXError as exc:
            self._defer(site, message, exc)
            return
        site.succeeded()
        counters.key_accepted()
        counters.statuses_posted += 1
        await asyncio.to_thread(
            self.plant.record, site.site_id, [message.id], "status", POSTED, row
        )
        log.info(
            "Asset status posted.",
            extra={"site": site.site_id, "asset": message.asset.id, "status": message.status},
        )
        await self._answer(site.site_id, message, POSTED)

    def _defer(
        self,
        site: SiteRuntime,
        message: MeterReadingMessage | AssetStatusMessage,
        exc: Exception,
    ) -> None:
        """Not served now: the agent sends it again after its result timeout. One failed
        request backs the site off once, however many readings its batch held."""
        self.stats.site(site.site_id).deferred += 1
        seen = self._failures.get(site.site_id)
        self._failures[site.site_id] = exc
        if exc is seen:
            pass
        elif isinstance(exc, CredentialsRejected):
            # Plant data only: a key refused for meters must not park the site's alerts.
            if self.stats.site(site.site_id).refuse_key(str(exc), time.monotonic(), KEY_HOLD_S):
                log.error(
                    "MaintainX refused this site's API key for plant data; it waits (alerts "
                    "go on), tried again every minute.",
                    extra={"site": site.site_id, "error": str(exc)},
                )
        elif isinstance(exc, RateLimited):
            site.back_off("rate limited", str(exc), exc.reset_s)
        elif isinstance(exc, MaintainXError):
            site.back_off("MaintainX unavailable", str(exc))
        log.info(
            "Plant data not served now; the agent sends it again.",
            extra={"site": site.site_id, "id": message.id, "error": str(exc)},
        )

    async def _refused(
        self,
        site: SiteRuntime,
        message: MeterReadingMessage | AssetStatusMessage,
        exc: BadRequest | None,
        reason: str = "maintainx_refused",
        status: StatusRow | None = None,
    ) -> None:
        """Never accepted as it is: recorded and answered ``rejected``."""
        self.stats.site(site.site_id).rejected[reason] += 1
        detail = str(exc) if exc is not None else "the asset has no maintainx_id"
        log.error(
            "Plant data refused for good.",
            extra={"site": site.site_id, "id": message.id, "reason": reason, "detail": detail},
        )
        kind = "reading" if isinstance(message, MeterReadingMessage) else "status"
        action = f"{REJECTED}:{reason}"
        await asyncio.to_thread(self.plant.record, site.site_id, [message.id], kind, action, status)
        await self._answer(site.site_id, message, action, detail)

    # ------------------------------------------------------------------ answers

    async def _answer(
        self,
        site_id: str,
        message: MeterReadingMessage | AssetStatusMessage,
        action: str,
        detail: str | None = None,
    ) -> None:
        head, _, reason = action.partition(":")
        rejected = head == REJECTED
        order_key = (
            message.id
            if isinstance(message, MeterReadingMessage)
            else asset_order_key(site_id, message.asset.id)
        )
        payload = result_payload(
            site_id,
            status="rejected" if rejected else "ok",
            time_ns=time.time_ns(),
            event_id=message.id,
            alert_id=order_key,
            action=None if rejected else action,
            reason=(reason or "rejected") if rejected else None,
            detail=detail,
        )
        await self._send(site_id, payload)

    async def _send(self, site_id: str, payload: bytes) -> None:
        await self._publish(topics.plant_results(self.prefix, site_id), payload, 1, False)

    async def _reject(self, site_id: str, kind: PlantKind, rejected: Refusal) -> bool:
        if site_id in self.sites:
            self.stats.site(site_id).rejected[rejected.reason] += 1
        else:
            self.stats.siteless_rejections[rejected.reason] += 1
        if rejected.reason == "unknown_site":
            self.unknown.seen(site_id, kind)
        else:
            log.warning(
                "Plant data message rejected.",
                extra={
                    "site": site_id,
                    "topic_kind": kind,
                    "reason": rejected.reason,
                    "detail": rejected.detail,
                    "id": rejected.message_id,
                },
            )
        if rejected.message_id is None:
            return True  # nothing an agent could match the answer to
        payload = result_payload(
            site_id,
            status="rejected",
            time_ns=time.time_ns(),
            event_id=rejected.message_id,
            reason=rejected.reason,
            detail=rejected.detail,
        )
        try:
            await self._send(site_id, payload)
        except PublishFailed:
            return False
        return True

    async def _poison(
        self, site_id: str, message: MeterReadingMessage | AssetStatusMessage, exc: Exception
    ) -> bool:
        self.stats.poison += 1
        self.stats.site(site_id).rejected["poison"] += 1
        error = f"{type(exc).__name__}: {exc}"
        log.error(
            "Poison plant data message: its handling failed; answered rejected.",
            extra={"site": site_id, "id": message.id, "error": error},
            exc_info=exc,
        )
        kind = "reading" if isinstance(message, MeterReadingMessage) else "status"
        with contextlib.suppress(StoreError):
            await asyncio.to_thread(
                self.plant.record, site_id, [message.id], kind, f"{REJECTED}:poison", None
            )
        try:
            await self._answer(site_id, message, f"{REJECTED}:poison", error)
        except PublishFailed:
            return False
        return True

    @contextlib.asynccontextmanager
    async def _claim(self, key: str) -> AsyncIterator[bool]:
        """The store's claim on ``key`` while inside (True: ours; False: another replica's)."""
        if self.claims is None:
            yield True
            return
        claims = self.claims
        taken = await asyncio.to_thread(claims.claim, key, self.owner, self.claim_lease_ns)
        try:
            yield taken
        finally:
            if taken:
                with contextlib.suppress(StoreError):  # the lease runs out on its own
                    await asyncio.to_thread(claims.release, key, self.owner)

    @contextlib.asynccontextmanager
    async def _lock(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
