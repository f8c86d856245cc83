"""One site as the hub serves it: its own MaintainX client (its key, its organization), its
health (credentials, rate limit, backoff), its presence and its counters.

A site's failures stay with the site: a 401 or an exhausted rate limit blocks this site's
MaintainX calls only, its alerts are parked, and every other site carries on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from edge_agent.common.backoff import Backoff
from edge_agent.common.lean_httpx import httpx
from edge_agent.common.time_units import NS_PER_S
from edge_agent.config.secrets import Secret, SecretError, resolve
from edge_agent.hub.config import HubConfig, HubSite
from edge_agent.maintainx.client import MaintainXClient
from edge_agent.maintainx.meters import PLANT_RATE_SHARE
from edge_agent.redaction import register_secret

log = logging.getLogger(__name__)

POOL_CONNECTIONS: Final = 4
"""HTTP connections per site to MaintainX (its rate limit makes more pointless)."""
CREDENTIALS_RETRY_S: Final = 60.0
"""How often a site whose key was refused is tried again (its key file may have changed)."""


@dataclass
class Presence:
    """The site's status (``online``/``offline`` from its retained status message) and when
    it was last heard of (any message, in its own time: :mod:`edge_agent.hub.presence`)."""

    state: str = "unknown"
    last_seen_ns: int = 0
    changes: int = 0

    def seen(self, at_ns: int | None) -> None:
        if at_ns is not None:
            self.last_seen_ns = max(self.last_seen_ns, at_ns)


@dataclass
class SiteCounters:
    alerts_received: int = 0
    duplicates: int = 0
    parked: int = 0
    unexpected_errors: int = 0  # live alerts whose handling raised: parked for one more try
    work_orders_created: int = 0
    failed: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)


class SiteRuntime:
    """The live state of one configured site."""

    def __init__(
        self,
        site_id: str,
        config: HubSite,
        hub: HubConfig,
        base_dir: Path | None,
        *,
        clock: Any = time.monotonic,
    ) -> None:
        self.site_id = site_id
        self.config = config
        self._hub = hub
        self._base_dir = base_dir
        self._clock = clock
        self.location_id = config.location_id
        self._key: Secret | None = None
        self.client: MaintainXClient | None = None
        # Plant data's own client on the same key: it spends at most PLANT_RATE_SHARE of the
        # key's budget, so a backlog of meter data never makes an alert's work order wait.
        self.plant_client: MaintainXClient | None = None
        self.credentials_rejected = False
        self.config_error: str | None = None
        self.blocked_until = 0.0
        self.block_reason: str | None = None
        self.last_error: str | None = None
        self._backoff = Backoff(0.5, 60.0)
        self.presence = Presence()
        self.counters = SiteCounters()

    # ------------------------------------------------------------------ the client

    def open(self) -> None:
        """Resolve the key and build the client (no network I/O). A key that cannot be
        resolved blocks this site only."""
        try:
            key = self._resolve_key()
        except SecretError as exc:
            self.config_error = str(exc)
            self.block("api key unavailable", CREDENTIALS_RETRY_S)
            log.error("Site API key unavailable.", extra={"site": self.site_id, "error": str(exc)})
            return
        self.config_error = None
        # Registered before any client exists: no log line, result or /readyz body shows it.
        register_secret(key.reveal())
        self._key = key
        mx = self._hub.maintainx
        # A small pool: httpcore checks every pooled connection on each request, so a pool
        # as large as the hub's concurrency costs more CPU than it saves.
        pool = max(1, min(POOL_CONNECTIONS, self._hub.hub.concurrency))
        self.client = MaintainXClient(
            mx.base_url,
            key,
            self.config.organization_id,
            mx.timeout / NS_PER_S,
            self.config.rate_limit or mx.rate_limit,
            transport=httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
            ),
        )
        self.plant_client = MaintainXClient(
            mx.base_url,
            key,
            self.config.organization_id,
            mx.timeout / NS_PER_S,
            self.config.rate_limit or mx.rate_limit,
            transport=httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)
            ),
            rate_share=PLANT_RATE_SHARE,
        )

    async def refresh_key(self) -> bool:
        """Re-read the key reference; rebuild the client when the key changed (a rotated key
        file lifts a credentials block). True when the key changed. A key that cannot be
        read now (a key file being replaced, a wrong permission) keeps the running client;
        it is logged once and shown as ``credentials: unavailable`` until it can be read."""
        try:
            key = self._resolve_key()
        except SecretError as exc:
            if self.config_error != str(exc):
                log.error(
                    "Site API key unavailable; the running key is kept.",
                    extra={"site": self.site_id, "error": str(exc)},
                )
            self.config_error = str(exc)
            return False
        if self._key is not None and key.reveal() == self._key.reveal() and self.client:
            if self.config_error is not None:
                log.info("Site API key readable again.", extra={"site": self.site_id})
            self.config_error = None
            return False
        for client in self.clients():
            await client.aclose()
        self.open()
        self._lift_key_block()
        return True

    def _resolve_key(self) -> Secret:
        key = resolve(self.config.api_key, self._base_dir)
        if not key.reveal():  # an empty key file: no request could carry it
            raise SecretError("the key is empty (an empty key file or variable)")
        return key

    def reconfigure(self, config: HubSite, hub: HubConfig) -> list[MaintainXClient]:
        """A reload changed this site's settings: new clients from them (counters and
        presence stay). Returns the old clients for the caller to close once the requests
        they carry are done."""
        old = self.clients()
        self.config, self._hub = config, hub
        self.location_id = config.location_id
        self.client, self.plant_client, self._key = None, None, None
        self._lift_key_block()
        self.open()
        return old

    def _lift_key_block(self) -> None:
        """A new key: whatever the old one earned (refused, unreadable) no longer holds."""
        self.credentials_rejected = False
        if self.block_reason in ("credentials rejected", "api key unavailable"):
            log.info("Site unblocked: served again.", extra={"site": self.site_id, "by": "new key"})
            self.blocked_until, self.block_reason = 0.0, None
            self.last_error = None

    def clients(self) -> list[MaintainXClient]:
        """The site's open clients (alerts', plant data's)."""
        return [c for c in (self.client, self.plant_client) if c is not None]

    async def close(self) -> None:
        for client in self.clients():
            await client.aclose()

    # ------------------------------------------------------------------ health

    def usable(self) -> bool:
        """May this site's alerts be sent to MaintainX right now?"""
        return self.client is not None and self._clock() >= self.blocked_until

    def block(self, reason: str, seconds: float) -> None:
        if self.block_reason != reason:  # newly blocked, or for another reason: not every retry
            log.info(
                "Site blocked; its alerts are parked until it can be served.",
                extra={"site": self.site_id, "reason": reason, "retry_in_s": round(seconds, 3)},
            )
        self.blocked_until = max(self.blocked_until, self._clock() + seconds)
        self.block_reason = reason

    def reject_credentials(self, error: str) -> None:
        if not self.credentials_rejected:
            log.error(
                "MaintainX refused this site's API key; its alerts are parked.",
                extra={"site": self.site_id, "error": error},
            )
        self.credentials_rejected = True
        self.last_error = error
        self.block("credentials rejected", CREDENTIALS_RETRY_S)

    def back_off(self, reason: str, error: str, at_least_s: float = 0.0) -> None:
        self.last_error = error
        self.block(reason, max(at_least_s, self._backoff.next_delay()))

    def succeeded(self) -> None:
        if self.credentials_rejected or self.block_reason is not None:
            log.info("Site unblocked: served again.", extra={"site": self.site_id})
        self.credentials_rejected = False
        self.block_reason = None
        self.blocked_until = 0.0
        self._backoff.reset()

    def rate_limit(self) -> dict[str, Any]:
        """What the last MaintainX response said about this key's limit."""
        if self.client is None:
            return {"limit": None, "remaining": None, "rate_limited": 0}
        pacer = self.client.pacer
        return {
            "limit": pacer.limit,
            "remaining": pacer.remaining,
            "rate_limited": self.client.rate_limited,
        }

    def status(self) -> dict[str, Any]:
        """The site's line in ``/readyz``."""
        blocked_for = max(0.0, self.blocked_until - self._clock())
        return {
            "presence": self.presence.state,
            "last_seen_ns": self.presence.last_seen_ns,
            "credentials": "rejected"
            if self.credentials_rejected
            else ("unavailable" if self.config_error else "ok"),
            "blocked": blocked_for > 0,
            "blocked_for_s": round(blocked_for, 3),
            "block_reason": self.block_reason if blocked_for > 0 else None,
            "last_error": self.last_error,
            "rate_limit": self.rate_limit(),
        }
