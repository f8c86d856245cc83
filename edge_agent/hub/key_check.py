"""Each site's MaintainX key checked with one cheap authenticated call, at start and after a
reload, so ``/readyz`` says ``rejected`` before the first alert needs the key.

The call is ``GET /workorders?limit=1`` (any valid key may list its organization's work
orders; a wrong key gets 401, a key without access to the organization 403). One task per
site: a slow or unreachable MaintainX delays no other site and never the hub's start. A
network failure is retried with backoff, at most :data:`MAX_ATTEMPTS` times.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Iterable
from typing import Final

from edge_agent.common.backoff import Backoff
from edge_agent.hub.sites import SiteRuntime
from edge_agent.maintainx.errors import (
    CredentialsRejected,
    MaintainXError,
    OutcomeUnknown,
    RateLimited,
    TransientError,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 8
"""Network failures in a row before the check gives up (``unverified``) until the next reload."""
CALL_LIMIT_S: Final = 30.0
"""Upper bound of one check call, whatever the configured timeout and rate pacing."""


class KeyChecks:
    """The key checks in flight and each site's last answer:
    ``pending``, ``ok``, ``rejected``, ``unverified`` (network) or ``error`` (any other
    refusal, e.g. a key that needs ``organization_id``)."""

    def __init__(self, backoff: tuple[float, float] = (1.0, 30.0)) -> None:
        self.states: dict[str, str] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._backoff = backoff

    def check(self, sites: Iterable[SiteRuntime]) -> None:
        """Start (or restart) the check of each site; returns at once."""
        for site in sites:
            running = self._tasks.pop(site.site_id, None)
            if running is not None:
                running.cancel()
            self.states[site.site_id] = "pending"
            task = asyncio.create_task(self._check(site), name=f"hub-key-check-{site.site_id}")
            self._tasks[site.site_id] = task
            task.add_done_callback(functools.partial(self._ended, site.site_id))

    def forget(self, site_id: str) -> None:
        """A site left the hub file: stop its check."""
        task = self._tasks.pop(site_id, None)
        if task is not None:
            task.cancel()
        self.states.pop(site_id, None)

    def state(self, site_id: str) -> str:
        return self.states.get(site_id, "pending")

    async def wait(self) -> None:
        """Until every check started so far has its answer (for tests and scripts)."""
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _ended(self, site_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(site_id) is task:
            del self._tasks[site_id]
        if not task.cancelled() and task.exception() is not None:
            self.states[site_id] = "error"
            log.error("Key check raised.", extra={"site": site_id, "error": repr(task.exception())})

    async def _check(self, site: SiteRuntime) -> None:
        backoff = Backoff(*self._backoff)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            client = site.client
            if client is None:  # the key could not be resolved: open() said so already
                self.states[site.site_id] = "error"
                return
            try:
                async with asyncio.timeout(CALL_LIMIT_S):
                    async for _ in client.list_work_orders(limit=1, max_pages=1):
                        break
            except CredentialsRejected as exc:
                self.states[site.site_id] = "rejected"
                site.reject_credentials(str(exc))
                return
            except (RateLimited, TransientError, OutcomeUnknown, TimeoutError) as exc:
                delay = backoff.next_delay()
                log.warning(
                    "Key check could not reach MaintainX; retrying.",
                    extra={
                        "site": site.site_id,
                        "error": str(exc) or "timeout",
                        "attempt": attempt,
                        "retry_in_s": round(delay, 3),
                    },
                )
                await asyncio.sleep(delay)
                continue
            except MaintainXError as exc:
                self.states[site.site_id] = "error"
                site.last_error = str(exc)
                log.error("Key check refused.", extra={"site": site.site_id, "error": str(exc)})
                return
            self.states[site.site_id] = "ok"
            if site.credentials_rejected:
                site.succeeded()  # a key refused before (e.g. by an alert) works now
            log.info("Site API key accepted by MaintainX.", extra={"site": site.site_id})
            return
        self.states[site.site_id] = "unverified"
        log.warning(
            "Key check gave up after network failures; alerts will tell.",
            extra={"site": site.site_id, "attempts": MAX_ATTEMPTS},
        )
