"""Direct mode (no hub, no webhooks): the statuses of the rules' open work orders, polled.

The MaintainX forwarder records in the :class:`WorkOrderTracker` each work order it makes
for a rule; :class:`StatusPoller` asks ``GET /workorders/{id}`` for those not DONE nor
CANCELED, one request at a time, and records what MaintainX says. The tracker hands each
change to the rule engine (maintenance, acknowledgement, a repair's verification), as the
hub's messages do in MQTT mode.

The polls share the forwarder's client, so its pacer counts them with the deliveries; on
top of that they spend at most :data:`POLL_SHARE` of ``rate_limit`` (one request every
``60 / (rate_limit × POLL_SHARE)`` s), and a round starts no sooner than ``interval_s``
after the last. Failures are handled as the forwarder handles them: 401/403 stop the polls
until the credentials are reloaded (the forwarder is told and shows it in health), a rate
limit waits out the advertised reset, a 5xx or a network error backs off (doubling, with
jitter), a 404 is a deleted work order (recorded CANCELED: it is not open any more).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from edge_agent.alerts import AlertMessage
from edge_agent.common.backoff import Backoff
from edge_agent.forwarders.workorder_status import CLOSED, STATUSES, WorkOrderTracker
from edge_agent.maintainx.client import MaintainXClient
from edge_agent.maintainx.errors import (
    CredentialsRejected,
    MaintainXError,
    NotFound,
    RateLimited,
)
from edge_agent.maintainx.sync import SyncResult

log = logging.getLogger(__name__)

POLL_SHARE: Final = 0.25
"""The share of the rate limit the polls may spend: deliveries keep the rest."""
DEFAULT_INTERVAL_S: Final = 60.0
"""A round of polls starts no sooner than this after the last one began."""
MAX_PER_ROUND: Final = 200
"""Open work orders polled in one round (the oldest rules first; the rest next round)."""
IDLE_WAIT_S: Final = 5.0
"""While the forwarder has no client (starting, credentials rejected), looked again this often."""


@dataclass
class PollerStatus:
    """What the polls did since start (part of the forwarder's status)."""

    polls: int = 0
    changes: int = 0
    errors: int = 0
    rate_limited: int = 0
    gone: int = 0
    """Work orders MaintainX no longer has (404): recorded CANCELED."""
    refused: int = 0
    """Answers with a status that is not MaintainX's, or no work order: ignored."""
    interval_s: float = DEFAULT_INTERVAL_S
    request_gap_s: float = 0.0


ClientOf = Callable[[], MaintainXClient | None]
CredentialsRejectedHook = Callable[[CredentialsRejected], Awaitable[None]]


class StatusPoller:
    """Polls the tracker's open work orders through the client ``client_of()`` gives (the
    forwarder's, None while it has none). Run :meth:`run` as a task; cancel it to stop."""

    def __init__(
        self,
        tracker: WorkOrderTracker,
        client_of: ClientOf,
        credentials_rejected: CredentialsRejectedHook,
        *,
        rate_limit_per_min: int,
        backoff: Backoff,
        interval_s: float | None = None,
    ) -> None:
        self.tracker = tracker
        self._client_of = client_of
        self._credentials_rejected = credentials_rejected
        self.backoff = backoff
        gap_s = 60.0 / max(1.0, rate_limit_per_min * POLL_SHARE)
        interval = DEFAULT_INTERVAL_S if interval_s is None else interval_s
        self.status = PollerStatus(interval_s=interval, request_gap_s=gap_s)

    def open_work_orders(self) -> list[tuple[str, int]]:
        """``(rule, work order)`` of every work order the tracker knows open."""
        rules = sorted(self.tracker.snapshot().items())
        return [(rule, entry.work_order_id) for rule, entry in rules if entry.status not in CLOSED][
            :MAX_PER_ROUND
        ]

    async def run(self) -> None:
        """Poll round after round until cancelled. Never raises: MaintainX's failures are
        handled per request, anything else (the client closed under a round by a reload, a
        bug) is logged and the next round backs off."""
        while True:
            client = self._client_of()
            if client is None:
                await asyncio.sleep(IDLE_WAIT_S)
                continue
            try:
                pause = await self.poll_round(client)
            except Exception as exc:
                self.status.errors += 1
                pause = max(IDLE_WAIT_S, self.backoff.next_delay())
                # RuntimeError: httpx's "client has been closed" (the forwarder dropped it
                # for new credentials); anything else is a bug, logged with its traceback.
                log.warning(
                    "A round of work order status polls failed; retrying.",
                    extra={"error": repr(exc)},
                    exc_info=not isinstance(exc, RuntimeError),
                )
            await asyncio.sleep(pause)

    async def poll_round(self, client: MaintainXClient) -> float:
        """One round over the open work orders; returns how long to wait before the next
        (the interval, or a backoff after a failure)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        for rule, work_order_id in self.open_work_orders():
            pause = await self._poll_one(client, rule, work_order_id)
            if pause is not None:
                return pause
            await asyncio.sleep(self.status.request_gap_s)
        self.backoff.reset()
        return max(0.0, self.status.interval_s - (loop.time() - started))

    async def _poll_one(
        self, client: MaintainXClient, rule: str, work_order_id: int
    ) -> float | None:
        """Poll one work order; None to go on, else the pause before the next round."""
        self.status.polls += 1
        try:
            work_order = await client.get_work_order(work_order_id)
        except NotFound:
            self.status.gone += 1
            log.warning(
                "A rule's work order is gone from MaintainX; recorded as canceled.",
                extra={"rule": rule, "work_order_id": work_order_id},
            )
            self._record(rule, work_order_id, "CANCELED", None)
            return None
        except CredentialsRejected as exc:
            self.status.errors += 1
            await self._credentials_rejected(exc)
            return IDLE_WAIT_S
        except RateLimited as exc:
            self.status.rate_limited += 1
            return max(exc.reset_s, self.status.request_gap_s)
        except MaintainXError as exc:
            self.status.errors += 1
            delay = self.backoff.next_delay()
            log.warning(
                "Polling a work order's status failed; backing off.",
                extra={"work_order_id": work_order_id, "error": str(exc), "retry_in_s": delay},
            )
            return delay
        except (KeyError, TypeError, ValueError) as exc:  # a 200 without a work order in it
            self.status.refused += 1
            log.warning(
                "MaintainX answered a work order's status without one; ignored.",
                extra={"work_order_id": work_order_id, "error": repr(exc)},
            )
            return None
        status = work_order.get("status")
        if not isinstance(status, str) or status.upper() not in STATUSES:
            self.status.refused += 1
            log.warning(
                "MaintainX answered a status this agent does not know; ignored.",
                extra={"work_order_id": work_order_id, "status": str(status)[:64]},
            )
            return None
        self._record(rule, work_order_id, status.upper(), _assigned(work_order))
        return None

    def _record(self, rule: str, work_order_id: int, status: str, assigned: bool | None) -> None:
        try:
            changed = self.tracker.record_status(rule, work_order_id, status, assigned=assigned)
        except OSError as exc:  # the map could not be saved; the next round tries again
            log.error("Work order map not saved.", extra={"error": str(exc)})
            return
        if changed:
            self.status.changes += 1


def _assigned(work_order: dict[str, object]) -> bool | None:
    """Whether the work order has an assignee, when the answer says (``assignees`` expanded,
    or ``assigneeIds``/``teamIds``); None when it does not."""
    for key in ("assignees", "assigneeIds", "teamIds"):
        value = work_order.get(key)
        if isinstance(value, list) and value:
            return True
    if any(isinstance(work_order.get(key), list) for key in ("assignees", "assigneeIds")):
        return False
    return None


def record_delivery(tracker: WorkOrderTracker, message: AlertMessage, result: SyncResult) -> None:
    """What a delivery taught the tracker: the work order an episode got (polled from then
    on), or a reopen the forwarder made (OPEN again: polled again)."""
    if result.work_order_id is None:
        return
    try:
        if result.action in ("created", "found", "exists"):
            tracker.record_work_order(message["rule"], message["alert_id"], result.work_order_id)
        elif result.action == "reopened":
            tracker.record_status(message["rule"], result.work_order_id, "OPEN")
    except OSError as exc:  # the map could not be saved; the next poll round says
        log.error("Work order map not saved.", extra={"error": str(exc)})
