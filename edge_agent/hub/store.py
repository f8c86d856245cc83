"""What the hub keeps durably, as one interface with two backends (SQLite, PostgreSQL).

The store is the hub's memory: alert id → work order id (the ledger that makes "one work
order per alert" true), the events already applied and their results (so a redelivered alert
re-publishes its result and creates nothing), claims that keep two replicas off the same
alert, alerts parked while their site cannot be served, the work orders' statuses from the
webhooks, and the figures the KPIs are computed from.

Every method but ``begin_event_async`` is synchronous and may block on disk or network; the
hub calls them through ``asyncio.to_thread``. Every write is committed before the method returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from edge_agent.forwarders.maintainx.ledger import WorkOrderLedger

CLOSED_STATUSES = frozenset({"DONE", "CANCELED"})
"""Work order statuses after which a new activation makes a new work order."""


class StoreError(Exception):
    """The store cannot be reached or written (the hub retries; nothing is acknowledged)."""


@dataclass(frozen=True)
class AlertRecord:
    """One alarm episode as the hub first saw it."""

    site: str
    alert_id: str
    asset: str
    rule: str
    raised_ns: int


@dataclass(frozen=True)
class StoredResult:
    """What became of one event (re-published when the event comes again)."""

    event_id: str
    alert_id: str
    action: str
    work_order_id: int | None


@dataclass(frozen=True)
class EventStart:
    """What :meth:`HubStore.begin_event` found, in one round trip: the stored result when
    the event was applied before; else whether earlier events of the alert are parked,
    whether the claim was taken, and the alert's work order if it has one."""

    result: StoredResult | None
    pending: bool
    claimed: bool
    work_order_id: int | None = None
    create_begun: bool | None = None
    """Set when ``begin_event(..., begin_create=True)`` also began the create (committed):
    what :meth:`WorkOrderLedger.begin_create` would have answered."""


@dataclass(frozen=True)
class WorkOrderRef:
    """A work order this hub created, with the last status the webhooks reported."""

    site: str
    work_order_id: int
    alert_id: str
    asset: str
    rule: str
    status: str


@dataclass(frozen=True)
class PendingEvent:
    """An alert event parked because its site could not be served when it arrived."""

    event_id: str
    site: str
    alert_id: str
    payload: str
    attempts: int


@dataclass(frozen=True)
class KpiRow:
    """Maintenance figures for one (site, asset)."""

    site: str
    asset: str
    alerts_raised: int
    work_orders_created: int
    open_backlog: int
    work_orders_done: int
    mttr_s: float | None


class HubStore(Protocol):
    """The hub's durable state. Implementations: :class:`~.store_sqlite.SqliteHubStore`,
    :class:`~.store_postgres.PostgresHubStore`."""

    def ledger(
        self, alert: AlertRecord, start: EventStart | None = None, owner: str | None = None
    ) -> WorkOrderLedger:
        """The :class:`WorkOrderLedger` for one alert (it records the work order's site and
        asset with its id). With ``start``, the first ``is_done``/``work_order_for`` are
        answered from it; with ``owner``, ``mark_done`` also releases the owner's claim."""
        ...

    def begin_event(
        self,
        alert: AlertRecord,
        event_id: str,
        owner: str,
        lease_ns: int,
        *,
        check_pending: bool,
        begin_create: bool = False,
    ) -> EventStart:
        """``result_of``, then (``check_pending``) ``has_pending``, then ``claim`` and
        ``record_alert``, stopping at the first that decides: one call instead of four. With
        ``begin_create`` (an event that will create the work order if the alert has none), a
        store may also begin the create in the same transaction (``create_begun``)."""
        ...

    async def begin_event_async(
        self,
        alert: AlertRecord,
        event_id: str,
        owner: str,
        lease_ns: int,
        *,
        check_pending: bool,
        begin_create: bool = False,
    ) -> EventStart:
        """:meth:`begin_event` for the event loop (SQLite hands it straight to its writer
        thread; PostgreSQL runs it in a worker thread)."""
        ...

    def record_alert(self, alert: AlertRecord) -> None:
        """Remember the episode (first sighting wins)."""
        ...

    def claim(self, alert_id: str, owner: str, lease_ns: int) -> bool:
        """Take the alert for ``lease_ns``; False while another owner holds it."""
        ...

    def release(self, alert_id: str, owner: str) -> None: ...

    def result_of(self, event_id: str) -> StoredResult | None:
        """The stored result of an event already applied."""
        ...

    def park(self, site: str, event_id: str, alert_id: str, payload: str, reason: str) -> None:
        """Keep an event to apply later (the first park of an event wins)."""
        ...

    def has_pending(self, alert_id: str) -> bool:
        """True when an earlier event of this alert is parked (later ones queue behind it)."""
        ...

    def take_pending(self, site: str, owner: str, lease_ns: int, limit: int) -> list[PendingEvent]:
        """Lease up to ``limit`` parked events of ``site``, oldest first."""
        ...

    def unpark(self, event_id: str) -> None: ...

    def pending_counts(self) -> dict[str, int]:
        """Parked events per site."""
        ...

    def work_order(self, site: str, work_order_id: int) -> WorkOrderRef | None: ...

    def apply_status(
        self, delivery_key: str, site: str, work_order_id: int, status: str, occurred_ns: int
    ) -> WorkOrderRef | None:
        """Record a webhook's status change. None when the delivery was seen before or the
        work order is not one this hub created; a status older than the one recorded is
        kept as a delivery but does not move the status back."""
        ...

    def kpis(self) -> list[KpiRow]: ...

    def close(self) -> None: ...
