"""MaintainX webhooks in: signature checked, status changes turned into retained
``{prefix}/{site}/workorders/{id}`` messages for the site that raised the alert.

MaintainX signs each delivery with ``x-maintainx-webhook-body-signature: t=<unix>,v1=<hex>``
where hex = HMAC-SHA256(secret, f"{t}.{raw body}"). A missing or wrong signature, or a
timestamp more than ``max_age`` away from now, gets 401; the comparison is constant-time;
a body over ``max_body`` gets 413 unread. The store remembers every delivery (by the hash
of its signed body), so a replay changes nothing a second time.

The endpoint is ``POST /maintainx/webhooks/{site}`` (what ``--register-webhooks``
registers); ``POST /maintainx/webhooks`` finds the site from the payload's ``orgId`` when
one site has that organization, else from the work order: the site whose alert made it, as
the store says (several sites may share one MaintainX organization).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from edge_agent.common.http import HttpServer, Limits, Request, Response
from edge_agent.hub.messages import webhook_assigned, work_order_status
from edge_agent.hub.store import HubStore, StoreError, StoreRejected, WorkOrderRef
from edge_agent.wire.alert import WireError, is_wire_id, wire_time_ns

log = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "x-maintainx-webhook-body-signature"
PATH_PREFIX: Final = "/maintainx/webhooks"
_MAX_HEADER_BYTES: Final = 16 * 1024
_READ_TIMEOUT_S: Final = 10.0
MAX_STATUS_CHARS: Final = 64
# MaintainX delivers one webhook at a time per subscription: room for bursts and retries.
_MAX_CONNECTIONS: Final = 64

Publish = Callable[[str, bytes, int, bool], Awaitable[None]]


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value MaintainX would send (used by tests and the emulator's peers)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify_signature(
    header: str | None,
    body: bytes,
    secrets: Sequence[str],
    *,
    now_s: float,
    max_age_s: float,
) -> str | None:
    """None when the signature is good and fresh, else why not (for the log, not the
    caller). Every secret is compared in constant time."""
    if not header:
        return "no signature header"
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields.setdefault(name, []).append(value)
    stamp = fields.get("t", [""])[0]
    if not stamp.isdigit():
        return "no timestamp in the signature"
    if abs(now_s - int(stamp)) > max_age_s:
        return "timestamp outside the allowed window"
    signed = stamp.encode() + b"." + body
    good = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        for given in fields.get("v1", []):
            # Accumulate instead of returning early: timing says nothing about which matched.
            good |= hmac.compare_digest(expected, given.strip().lower())
    return None if good else "signature does not match"


class WebhookHandler:
    """Applies verified deliveries: store, then the retained work-order message."""

    def __init__(
        self,
        *,
        prefix: str,
        store: HubStore,
        publish: Publish,
        secrets: Callable[[str | None], Sequence[str]],
        org_sites: dict[int, str],
        known_sites: frozenset[str],
        site_orgs: dict[str, int | None] | None = None,
        max_body: int,
        max_age_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.prefix = prefix
        self.store = store
        self._publish = publish
        self._secrets = secrets
        self._org_sites = org_sites
        self._known = known_sites
        self._site_orgs = site_orgs or {}
        self.max_body = max_body
        self.max_age_s = max_age_s
        self._clock = clock
        self.outcomes: Counter[str] = Counter()

    def sites_changed(
        self,
        org_sites: dict[int, str],
        known_sites: frozenset[str],
        site_orgs: dict[str, int | None],
    ) -> None:
        """A reload added or removed sites, or changed their organizations."""
        self._org_sites, self._known, self._site_orgs = org_sites, known_sites, site_orgs

    async def handle(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """One POST: (HTTP status, JSON answer). Never raises: a delivery whose handling
        raises is a poison delivery, logged, counted and answered 200 ``rejected`` (a 5xx
        would make MaintainX send it again and again)."""
        try:
            return await self._handle(path, headers, body)
        except StoreRejected as exc:
            log.error("Webhook refused by the store.", extra={"path": path, "error": str(exc)})
            return self._out(200, "rejected")
        except Exception as exc:
            log.error(
                "Poison webhook: its handling failed; answered rejected.",
                extra={"path": path, "error": f"{type(exc).__name__}: {exc}"},
                exc_info=exc,
            )
            return self._out(200, "rejected")

    async def _handle(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        site = self._site_from_path(path)
        if site is False:
            return self._out(404, "not_found")
        secrets = self._secrets(site if isinstance(site, str) else None)
        if not secrets:
            return self._out(503, "no_secret")
        why = verify_signature(
            headers.get(SIGNATURE_HEADER),
            body,
            secrets,
            now_s=self._clock(),
            max_age_s=self.max_age_s,
        )
        if why is not None:
            log.warning("Webhook refused.", extra={"reason": why, "path": path})
            return self._out(401, "unauthorized")
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return self._out(400, "not_json")
        if not isinstance(data, dict):
            return self._out(400, "not_json")
        work_order_id = data.get("workOrderId")
        new_status = data.get("newStatus")
        if not isinstance(work_order_id, int) or not isinstance(new_status, str):
            # Other subscription types are accepted and ignored (MaintainX would retry a 4xx).
            return self._out(200, "ignored")
        if not is_wire_id(work_order_id) or not 0 < len(new_status) <= MAX_STATUS_CHARS:
            # Signed, so MaintainX sent it, but no work order has such an id or status.
            log.warning(
                "Webhook with an implausible work order id or status ignored.",
                extra={"path": path, "status_chars": len(new_status)},
            )
            return self._out(200, "invalid")
        if not isinstance(site, str):
            site = await self._site_of(data, work_order_id)
            if site is None:
                log.info(
                    "Webhook for a work order no site of this hub made; ignored.",
                    extra={"work_order_id": work_order_id, "org_id": data.get("orgId")},
                )
                return self._out(200, "not_ours")
        occurred = data.get("occurredAt")
        try:
            occurred_ns = wire_time_ns(occurred, "occurredAt")
        except WireError:
            occurred = None  # not passed on either
            occurred_ns = time.time_ns()
        if data.get("newSubStatus") == "CANCELED":
            new_status = "CANCELED"  # MaintainX reports a cancel as DONE with a sub status
        key = hashlib.sha256(body).hexdigest()
        try:
            ref = await asyncio.to_thread(
                self.store.apply_status, key, site, work_order_id, new_status.upper(), occurred_ns
            )
        except StoreError as exc:
            log.warning("Webhook not stored; MaintainX will retry.", extra={"error": str(exc)})
            return self._out(503, "store_unavailable")
        if ref is None:
            known = await asyncio.to_thread(self.store.work_order, site, work_order_id)
            if known is None:
                log.info(
                    "Webhook for a work order this site's alerts did not make; ignored.",
                    extra={"site": site, "work_order_id": work_order_id},
                )
            return self._out(200, "replay" if known is not None else "not_ours")
        log.info(
            "Webhook applied.",
            extra={
                "site": site,
                "work_order_id": work_order_id,
                "status": ref.status,
                "alert_id": ref.alert_id,
            },
        )
        try:
            await self._announce(ref, data, occurred if isinstance(occurred, str) else None)
        except Exception as exc:  # the store has it; the next status change re-announces
            log.warning("Work order status not published.", extra={"error": str(exc)})
        return self._out(200, "applied")

    async def _announce(
        self, ref: WorkOrderRef, data: dict[str, Any], occurred: str | None
    ) -> None:
        old = data.get("oldStatus")
        topic, payload = work_order_status(
            self.prefix,
            ref,
            old if isinstance(old, str) else None,
            occurred,
            webhook_assigned(data),
        )
        await self._publish(topic, payload, 1, True)
        log.debug(
            "Work order status sent to its site.",
            extra={"site": ref.site, "work_order_id": ref.work_order_id, "status": ref.status},
        )

    async def _site_of(self, data: dict[str, Any], work_order_id: int) -> str | None:
        """The site of a delivery to the bare path: the only site of its organization, or
        the one site whose alert made this work order (within that organization)."""
        org = data.get("orgId")
        org = org if isinstance(org, int) and not isinstance(org, bool) else None
        if org is not None and org in self._org_sites:
            return self._org_sites[org]
        candidates = await asyncio.to_thread(self.store.sites_of_work_order, work_order_id)
        if org is not None:
            candidates = [s for s in candidates if self._site_orgs.get(s) in (org, None)]
        candidates = [s for s in candidates if s in self._known]
        return candidates[0] if len(candidates) == 1 else None

    def _site_from_path(self, path: str) -> str | bool | None:
        """The site named in the path; None for the bare path; False for any other path."""
        path = path.split("?", 1)[0].rstrip("/")
        if path == PATH_PREFIX:
            return None
        if path.startswith(PATH_PREFIX + "/"):
            site = path[len(PATH_PREFIX) + 1 :]
            return site if site in self._known else False
        return False

    def _out(self, status: int, outcome: str) -> tuple[int, dict[str, Any]]:
        self.outcomes[outcome] += 1
        return status, {"result": outcome}


class WebhookServer:
    """The webhook endpoint on the project's one bounded HTTP server
    (:mod:`edge_agent.common.http`): POST only, bodies up to the handler's ``max_body``."""

    def __init__(self, host: str, port: int, handler: WebhookHandler) -> None:
        self._handler = handler
        limits = Limits(
            max_connections=_MAX_CONNECTIONS,
            request_timeout_s=_READ_TIMEOUT_S,
            max_head_bytes=_MAX_HEADER_BYTES,
            max_body_bytes=handler.max_body,
        )
        self.server = HttpServer(
            host, port, self._respond, name="webhooks", limits=limits, on_drop=self._dropped
        )

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        await self.server.start()  # ListenError is an OSError, as callers expect
        log.info("Webhook endpoint listening.", extra={"port": self.port})

    async def close(self) -> None:
        await self.server.close()

    def _dropped(self, reason: str) -> None:
        # Refused before the handler (too_large, timeout, bad_request, busy...): counted
        # with the handler's outcomes, which the hub's metrics show.
        self._handler.outcomes[reason] += 1

    async def _respond(self, request: Request) -> Response:
        if request.method != "POST":
            status, answer = 405, {"result": "method_not_allowed"}
        else:
            status, answer = await self._handler.handle(
                request.target, request.headers, request.body
            )
        return Response(status, json.dumps(answer).encode(), "application/json")
