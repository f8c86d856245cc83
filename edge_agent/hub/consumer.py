"""Alert messages in, MaintainX work orders out, results back: the hub's core.

:meth:`AlertConsumer.handle` takes one message from ``{prefix}/{site}/alerts`` and returns
True when it may be acknowledged: the event is applied (or was before), parked durably for
later, or rejected for good. It returns False only when nothing durable could be written
(the store is down, the result could not be published): the message then stays
unacknowledged and the broker redelivers it.

The order of the durable steps is what makes redelivery harmless: the store records the
work order before the event is marked done, the event is marked done before its result is
published, and the result is published before the message is acknowledged.

A valid message whose handling raises anything else gets one more try first: the first
unexpected exception of a live alert (not a store outage, a failed publish or a MaintainX
error, which have their own paths) may be a library's transient surprise, so the event is
parked (reason ``unexpected_error``, held for the retry interval, not answered: the agent
awaits the final answer), logged with its traceback and counted, and
:meth:`AlertConsumer.drain_site` applies it again. A parked event whose
handling raises, and a value the store refuses for good (``StoreRejected``), is a *poison
message*: counted, logged with its event id, recorded as ``rejected`` (a redelivery is
answered from that record), answered ``rejected`` with the reason, and acknowledged. One
message never holds a worker, the broker's in-flight window or the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from edge_agent.alerts import AlertMessage, parse_time
from edge_agent.common.time_units import NS_PER_S
from edge_agent.errors import EdgeAgentError
from edge_agent.hub.alert_locks import AlertLocks
from edge_agent.hub.messages import (
    Rejection,
    validate_alert,
    work_order_status,
)
from edge_agent.hub.presence import UnknownSites, seen_at
from edge_agent.hub.sites import SiteRuntime
from edge_agent.hub.store import (
    CLOSED_STATUSES,
    AlertRecord,
    EventStart,
    HubStore,
    StoredResult,
    StoreError,
    StoreRejected,
)
from edge_agent.hub.store_lifecycle import RECORDED_EVENTS, alarm_event_record
from edge_agent.maintainx.errors import (
    BadRequest,
    CredentialsRejected,
    MaintainXError,
    NotFound,
    RateLimited,
)
from edge_agent.maintainx.ledger import WorkOrderLedger
from edge_agent.maintainx.sync import (
    SyncResult,
    apply_alert,
    has_reactivation_comment,
    reactivated_text,
    settle_s,
)
from edge_agent.wire import topics
from edge_agent.wire.result import result_payload

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes, int, bool], Awaitable[None]]
"""Publish (topic, payload, qos, retain) and wait for the broker's acknowledgement."""

UNEXPECTED_ERROR: Final = "unexpected_error"
"""The park reason of a live alert whose handling raised unexpectedly (its one more try)."""
CLAIM_WAIT_S: Final = 0.05
CLAIM_TRIES: Final = 40
PENDING_BATCH: Final = 50


class PublishFailed(EdgeAgentError):
    """A result could not be published (the message must not be acknowledged)."""


@dataclass
class ConsumerStats:
    handled: int = 0  # valid alerts taken in
    finished: int = 0  # valid alerts whose handling ended (acknowledged or not)
    # Rejections that name no configured site, by reason (bad_topic, unknown_site...).
    siteless_rejections: Counter[str] = field(default_factory=Counter)
    store_errors: int = 0
    poison: int = 0  # valid messages whose handling raised: answered rejected, acknowledged
    unexpected: int = 0  # live alerts whose handling raised: parked for one more try


class AlertConsumer:
    """Applies alert messages for the configured sites (see the module docstring)."""

    def __init__(
        self,
        *,
        prefix: str,
        sites: dict[str, SiteRuntime],
        store: HubStore,
        publish: Publish,
        owner: str,
        max_message: int,
        claim_lease_ns: int,
        retry_interval_s: float,
    ) -> None:
        self.prefix = prefix
        self.sites = sites
        self.store = store
        self._publish = publish
        self.owner = owner
        self.max_message = max_message
        self.claim_lease_ns = claim_lease_ns
        self.retry_interval_s = retry_interval_s
        self._known = frozenset(sites)
        self._locks = AlertLocks()
        self.stats = ConsumerStats()
        self.unknown = UnknownSites()

    def sites_changed(self) -> None:
        """A reload added or removed sites: alerts of a removed site are unknown now."""
        self._known = frozenset(self.sites)

    # ------------------------------------------------------------------ entry point

    async def handle(self, topic: str, payload: bytes) -> bool:
        """One message from ``{prefix}/{site}/alerts``; True when it may be acknowledged."""
        parts = topics.parse_site_topic(self.prefix, topic)
        if parts is None or parts.kind != "alerts":
            await self._reject(Rejection("bad_topic", f"not an alert topic: {topic[:200]!r}"))
            return True
        checked = validate_alert(
            parts.site, payload, known_sites=self._known, max_bytes=self.max_message
        )
        if isinstance(checked, Rejection):
            return await self._reject(checked)
        site = self.sites[parts.site]
        site.counters.alerts_received += 1
        raised_ns = parse_time(checked["time"])
        site.presence.seen(seen_at(raised_ns, time.time_ns(), retained=False))
        self.stats.handled += 1
        raw = payload.decode()
        try:
            async with self._locks.hold(checked["alert_id"]):
                try:
                    # The foreign-id check is the store's first step (begin_event's
                    # ``site``): one hand-off to it instead of two.
                    outcome = await self._process(
                        site, checked, raw, from_pending=False, raised_ns=raised_ns
                    )
                except (StoreError, PublishFailed):
                    raise  # their own paths below (a StoreRejected: poison at once)
                except Exception as exc:
                    # Under the alert's lock: a redelivery finds it parked, not half done.
                    await self._park_unexpected(site, checked, raw, exc)
                    return True
                if outcome == "foreign":
                    return await self._reject(
                        Rejection(
                            "foreign_id",
                            "this alert or event id was first used by another site",
                            site.site_id,
                            checked["event_id"],
                        )
                    )
        except StoreRejected as exc:
            return await self._poison(site, checked, exc)
        except (StoreError, PublishFailed) as exc:
            self.stats.store_errors += 1
            log.warning(
                "Alert not acknowledged; the broker will redeliver it.",
                extra={"site": site.site_id, "event_id": checked["event_id"], "error": str(exc)},
            )
            return False
        except Exception as exc:
            return await self._poison(site, checked, exc)
        finally:
            self.stats.finished += 1
        return True

    async def _foreign_ids(self, site: SiteRuntime, message: AlertMessage) -> bool:
        """True when another site used this alert or event id first. A site's ids are its
        own (the agent derives them from its site id); one naming another site's ids
        would otherwise reach that site's work order, comment on it with its own key and
        read that site's answers."""
        owners = await self.store.sites_of_async(message["alert_id"], message["event_id"])
        return bool(owners - {site.site_id})

    async def _park_unexpected(
        self, site: SiteRuntime, message: AlertMessage, raw: str, exc: Exception
    ) -> None:
        """The first unexpected exception of a live alert: parked durably, held for the
        retry interval, for one more try (a library's transient surprise, e.g. an anyio
        AttributeError out of httpx, must not lose the alarm). A store error here leaves
        the message unacknowledged (the caller's path).

        Not answered ``parked``: that answer ends the agent's wait, and a second failure
        would then be a rejection the agent no longer awaits (not in its dead letters). The
        try comes within a retry interval or two, long before the agent's result timeout
        (60 s by default), so the agent gets the final answer, ``ok`` or ``rejected``; a
        resend before it is answered ``parked`` from the parked record."""
        self.stats.unexpected += 1
        site.counters.unexpected_errors += 1
        log.error(
            "Alert handling raised unexpectedly; parked for one more try.",
            extra={
                "site": site.site_id,
                "event_id": message["event_id"],
                "alert_id": message["alert_id"],
                "error": f"{type(exc).__name__}: {exc}",
            },
            exc_info=exc,
        )
        hold_ns = int(self.retry_interval_s * NS_PER_S)
        await asyncio.to_thread(
            self.store.park,
            site.site_id,
            message["event_id"],
            message["alert_id"],
            raw,
            UNEXPECTED_ERROR,
            hold_ns,
        )
        site.counters.parked += 1

    async def _poison(self, site: SiteRuntime, message: AlertMessage, exc: Exception) -> bool:
        """Answer a message whose handling raised: record, answer ``rejected``, acknowledge.
        False only when the answer could not be published (the worker tries again, and the
        retry is answered from the record)."""
        self.stats.poison += 1
        site.counters.rejected["poison"] += 1
        error = f"{type(exc).__name__}: {exc}"
        log.error(
            "Poison message: its handling failed; answered rejected and acknowledged.",
            extra={
                "site": site.site_id,
                "event_id": message["event_id"],
                "alert_id": message["alert_id"],
                "error": error,
            },
            exc_info=exc,
        )
        try:
            await asyncio.to_thread(
                self.store.record_rejection, message["event_id"], message["alert_id"], "poison"
            )
        except StoreError as store_exc:
            # Not recorded: a redelivery is handled again and, most likely, rejected again.
            log.warning(
                "Poison message not recorded.",
                extra={"event_id": message["event_id"], "error": str(store_exc)},
            )
        try:
            await self._publish_result(
                site, message, "rejected", None, None, reason="poison", detail=error
            )
        except PublishFailed:
            return False
        return True

    # ------------------------------------------------------------------ rejections

    async def _reject(self, rejection: Rejection) -> bool:
        site = self.sites.get(rejection.site or "")
        if site is not None:
            site.counters.rejected[rejection.reason] += 1
        else:
            self.stats.siteless_rejections[rejection.reason] += 1
        if rejection.reason == "unknown_site" and rejection.site is not None:
            self.unknown.seen(rejection.site, "alert")  # logged once per site, not per alert
        else:
            log.warning(
                "Alert message rejected.",
                extra={
                    "site": rejection.site,
                    "reason": rejection.reason,
                    "detail": rejection.detail,
                    "event_id": rejection.event_id,
                },
            )
        if rejection.site is not None:  # a valid site id, from the topic
            payload = result_payload(
                rejection.site,
                status="rejected",
                time_ns=time.time_ns(),
                event_id=rejection.event_id,
                reason=rejection.reason,
                detail=rejection.detail,
            )
            try:
                await self._publish(self._results_topic(rejection.site), payload, 1, False)
            except PublishFailed:
                return False
        return True

    # ------------------------------------------------------------------ processing

    async def _process(
        self,
        site: SiteRuntime,
        message: AlertMessage,
        raw: str,
        *,
        from_pending: bool,
        raised_ns: int | None = None,
    ) -> str:
        """Apply one valid event; returns ``done``, ``parked`` or ``busy``, or ``foreign``
        (a new message naming another site's ids: nothing done, the caller rejects it).
        ``raised_ns``: the message's time, when the caller parsed it already."""
        event_id = message["event_id"]
        # A parked event was checked when it arrived; a new one is checked here.
        check_site = None if from_pending else site.site_id
        if not from_pending and not site.usable():
            if await self._foreign_ids(site, message):
                return "foreign"
            stored = await asyncio.to_thread(self.store.result_of, event_id)
            if stored is not None:
                await self._duplicate(site, message, stored)
                return "done"
            await self._park(site, message, raw, site.block_reason or "site blocked")
            return "parked"
        record = AlertRecord(
            site=site.site_id,
            alert_id=message["alert_id"],
            asset=str(message["asset"].get("id") or ""),
            rule=message["rule"],
            raised_ns=parse_time(message["time"]) if raised_ns is None else raised_ns,
        )
        # An activation creates the work order unless the alert has one (or notify is off).
        creates = message["event"] == "activated" and message.get("notify", True) is True
        for attempt in range(CLAIM_TRIES):
            start = await self.store.begin_event_async(
                record,
                event_id,
                self.owner,
                self.claim_lease_ns,
                check_pending=not from_pending,
                begin_create=creates,
                site=check_site,
            )
            if start.foreign:
                return "foreign"
            if start.result is not None:
                await self._duplicate(site, message, start.result)
                return "done"
            if start.pending:
                await self._park(site, message, raw, "earlier events of this alert are parked")
                return "parked"
            if start.claimed:
                break
            if attempt + 1 < CLAIM_TRIES:
                await asyncio.sleep(CLAIM_WAIT_S)  # another replica holds this alert
        else:
            if not from_pending:
                await self._park(site, message, raw, "another replica holds this alert")
            return "busy"
        ledger = self.store.ledger(record, start, self.owner)
        try:
            return await self._apply(site, message, raw, record, start, ledger, from_pending)
        finally:
            if ledger.unflushed:  # a work order recorded, not committed
                with contextlib.suppress(StoreError):
                    await ledger.flush()
            if not ledger.released:
                with contextlib.suppress(StoreError):
                    await asyncio.to_thread(self.store.release, record.alert_id, self.owner)

    async def _duplicate(
        self, site: SiteRuntime, message: AlertMessage, stored: StoredResult
    ) -> None:
        """Answer a redelivered event from the record: the same status, nothing applied."""
        site.counters.duplicates += 1
        rejected = stored.status == "rejected"
        await self._publish_result(
            site,
            message,
            stored.status,
            None if rejected else stored.action,
            stored.work_order_id,
            duplicate=True,
            reason=stored.reason,
        )

    async def _apply(
        self,
        site: SiteRuntime,
        message: AlertMessage,
        raw: str,
        record: AlertRecord,
        start: EventStart,
        ledger: WorkOrderLedger,
        from_pending: bool,
    ) -> str:
        client = site.client
        if client is None:
            if not from_pending:
                await self._park(site, message, raw, "site has no usable API key")
            return "parked"
        location = message["work_order"].get("location_id") or site.location_id
        if message["event"] in RECORDED_EVENTS:
            # Kept before it is applied (once per event id): a redelivered event that the
            # ledger answers as a duplicate would never come back here.
            kept = alarm_event_record(site.site_id, message, parse_time(message["time"]))
            await asyncio.to_thread(self.store.record_alarm_event, kept)
        try:
            result = await self._not_ours(site, message, ledger)
            if result is None:
                result = await self._related(site, message, record, start, ledger)
            if result is None:
                result = await apply_alert(
                    client,
                    ledger,
                    message,
                    asset_id=message["asset"].get("maintainx_id"),
                    location_id=location,
                )
        except CredentialsRejected as exc:
            site.reject_credentials(str(exc))
            return await self._park_after_failure(site, message, raw, from_pending, "credentials")
        except RateLimited as exc:
            site.back_off("rate limited", str(exc), exc.reset_s)
            return await self._park_after_failure(site, message, raw, from_pending, "rate limited")
        except BadRequest as exc:
            # MaintainX will never accept this event: record it as finished with the reason.
            site.counters.failed += 1
            log.error(
                "MaintainX refused an alert for good.",
                extra={"site": site.site_id, "event_id": message["event_id"], "error": str(exc)},
            )
            await ledger.mark_done(message["event_id"], "failed")
            await self._publish_result(
                site, message, "rejected", None, None, reason="maintainx_refused", detail=str(exc)
            )
            return "done"
        except MaintainXError as exc:
            site.back_off("MaintainX unavailable", str(exc))
            # Neither replica tries again before a request that may still land has landed.
            hold_ns = int(settle_s(exc, client.timeout_s) * NS_PER_S)
            return await self._park_after_failure(
                site, message, raw, from_pending, "unavailable", hold_ns
            )
        site.succeeded()
        site.counters.actions[result.action] += 1
        if result.action in ("created", "found"):
            # "found": an earlier create whose answer was lost did make the work order.
            site.counters.work_orders_created += 1
        log.info(
            "Alert event applied.",
            extra={
                "site": site.site_id,
                "alert_id": record.alert_id,
                "event": message["event"],
                "action": result.action,
                "work_order_id": result.work_order_id,
            },
        )
        await self._publish_result(site, message, "ok", result.action, result.work_order_id)
        return "done"

    async def _not_ours(
        self, site: SiteRuntime, message: AlertMessage, ledger: WorkOrderLedger
    ) -> SyncResult | None:
        """A lifecycle message naming a work order this hub did not make for this site
        (``work_order_id``: a maintenance comment, a verdict on a repair) is finished
        without a call: a site reaches only its own work orders (and a garbled id none)."""
        named = message.get("work_order_id")
        if named is None:
            return None
        known = await asyncio.to_thread(self.store.work_order, site.site_id, named)
        if known is not None:
            return None
        log.warning(
            "Alert event names a work order this hub did not make for its site; not applied.",
            extra={"site": site.site_id, "event_id": message["event_id"], "work_order_id": named},
        )
        await ledger.mark_done(message["event_id"], "unknown_work_order")
        return SyncResult(message["event_id"], message["alert_id"], "unknown_work_order", None)

    async def _related(
        self,
        site: SiteRuntime,
        message: AlertMessage,
        record: AlertRecord,
        start: EventStart,
        ledger: WorkOrderLedger,
    ) -> SyncResult | None:
        """A re-activation naming the rule's still-open work order comments on it instead of
        creating another. Only a work order this hub created for this site counts."""
        related = message.get("related_work_order")
        if message["event"] != "activated" or not isinstance(related, int) or related < 1:
            return None
        if message.get("held") is not None:
            return None  # held (shelved, out of service, maintenance): apply_alert's case
        if start.work_order_id is not None:
            return None  # this episode already has its work order: the normal path says so
        known = await asyncio.to_thread(self.store.work_order, site.site_id, related)
        if known is None or known.rule != record.rule:
            return None
        assert site.client is not None
        closed = known.status in CLOSED_STATUSES
        if not closed:
            # The store may have missed the webhook that closed it (MaintainX gives a
            # delivery up after a few tries): MaintainX says, so that an alarm never ends as
            # a comment on a closed work order, nor do the rule's next ones (chaos campaign).
            try:
                current = await site.client.get_work_order(related)
            except NotFound:
                return None  # deleted at MaintainX: this episode gets its own
            status = str(current.get("status", "")).upper()
            if status in CLOSED_STATUSES:
                await self._learn_closed(site, related, status)
                closed = True
        if closed:
            # An earlier try of this event may have commented while it was open and lost the
            # answer: that comment is then the event's news, not a new work order (found by
            # the fault campaign: a work order and a comment for one episode).
            if not await has_reactivation_comment(site.client, related, message):
                return None
        else:
            await site.client.add_comment(related, reactivated_text(message))
        await ledger.record_created(record.alert_id, related)
        await ledger.mark_done(message["event_id"], "commented")
        return SyncResult(message["event_id"], record.alert_id, "commented", related)

    async def _learn_closed(self, site: SiteRuntime, work_order_id: int, status: str) -> None:
        """Record a close the hub learnt by asking MaintainX, and tell the site (its tracker
        stops naming the work order as the rule's open one), as a webhook would have."""
        key = f"read:{site.site_id}:{work_order_id}:{status}"
        ref = await asyncio.to_thread(
            self.store.apply_status, key, site.site_id, work_order_id, status, time.time_ns()
        )
        log.info(
            "Work order found closed at MaintainX (its webhook was missed); the alarm gets "
            "a new one.",
            extra={"site": site.site_id, "work_order_id": work_order_id, "status": status},
        )
        if ref is None:
            return
        topic, payload = work_order_status(self.prefix, ref, None, None)
        try:
            await self._publish(topic, payload, 1, True)
        except Exception as exc:  # the store has it; the agent learns at the next change
            log.warning("Work order status not published.", extra={"error": str(exc)})

    async def _park_after_failure(
        self,
        site: SiteRuntime,
        message: AlertMessage,
        raw: str,
        from_pending: bool,
        why: str,
        hold_ns: int = 0,
    ) -> str:
        if not from_pending:
            await self._park(site, message, raw, why, hold_ns)
        elif hold_ns:  # parked already: it stays, handed out again no sooner than this
            await asyncio.to_thread(
                self.store.park,
                site.site_id,
                message["event_id"],
                message["alert_id"],
                raw,
                why,
                hold_ns,
            )
        return "parked"

    async def _park(
        self, site: SiteRuntime, message: AlertMessage, raw: str, reason: str, hold_ns: int = 0
    ) -> None:
        await asyncio.to_thread(
            self.store.park,
            site.site_id,
            message["event_id"],
            message["alert_id"],
            raw,
            reason,
            hold_ns,
        )
        site.counters.parked += 1
        log.info(
            "Alert parked until its site can be served.",
            extra={"site": site.site_id, "event_id": message["event_id"], "reason": reason},
        )
        await self._publish_result(site, message, "parked", None, None, detail=reason)

    # ------------------------------------------------------------------ parked events

    async def drain_site(self, site: SiteRuntime) -> int:
        """Apply this site's parked events, oldest first, while the site is usable."""
        applied = 0
        while site.usable():
            lease_ns = int(max(self.retry_interval_s, 1.0) * 1e9)
            batch = await asyncio.to_thread(
                self.store.take_pending, site.site_id, self.owner, lease_ns, PENDING_BATCH
            )
            if not batch:
                return applied
            for item in batch:
                if not site.usable():
                    return applied
                try:
                    message = json.loads(item.payload)
                except json.JSONDecodeError:
                    await asyncio.to_thread(self.store.unpark, item.event_id)
                    continue
                try:
                    async with self._locks.hold(item.alert_id):
                        outcome = await self._process(
                            site, message, item.payload, from_pending=True
                        )
                except (StoreError, PublishFailed) as exc:
                    if not isinstance(exc, StoreRejected):
                        raise
                    outcome = "done" if await self._poison(site, message, exc) else "busy"
                except Exception as exc:
                    # A parked event already had its one more try (an unexpected error's
                    # park included): poison now, and the drain of its site goes on.
                    outcome = "done" if await self._poison(site, message, exc) else "busy"
                if outcome == "done":
                    await asyncio.to_thread(self.store.unpark, item.event_id)
                    applied += 1
        return applied

    async def retry_loop(self) -> None:
        """Forever: drain every usable site's parked events; re-read refused keys."""
        while True:
            for site in list(self.sites.values()):  # a reload may change the dict
                try:
                    if site.credentials_rejected or site.config_error:
                        await site.refresh_key()
                    await self.drain_site(site)
                except (StoreError, PublishFailed) as exc:
                    log.warning(
                        "Retrying parked alerts failed.",
                        extra={"site": site.site_id, "error": str(exc)},
                    )
                except Exception:
                    # One site's surprise must not end the retries of every site.
                    log.exception("Retrying parked alerts raised.", extra={"site": site.site_id})
            await asyncio.sleep(self.retry_interval_s)

    # ------------------------------------------------------------------ helpers

    def _results_topic(self, site: str) -> str:
        return topics.results(self.prefix, site)

    async def _publish_result(
        self,
        site: SiteRuntime,
        message: AlertMessage,
        status: str,
        action: str | None,
        work_order_id: int | None,
        *,
        duplicate: bool = False,
        reason: str | None = None,
        detail: str | None = None,
    ) -> None:
        payload = result_payload(
            site.site_id,
            status=status,
            time_ns=time.time_ns(),
            event_id=message["event_id"],
            alert_id=message["alert_id"],
            rule=message["rule"],
            action=action,
            work_order_id=work_order_id,
            reason=reason,
            detail=detail,
        )
        await self._publish(self._results_topic(site.site_id), payload, 1, False)
        if duplicate:
            log.debug(
                "Alert seen before; result re-published.",
                extra={"site": site.site_id, "event_id": message["event_id"]},
            )
