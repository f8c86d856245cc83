"""What the hub keeps durably, as one interface with two backends (SQLite, PostgreSQL).

The store is the hub's memory: alert id → work order id (the ledger that makes "one work
order per alert" true), the events already applied and their results (so a redelivered alert
re-publishes its result and creates nothing), claims that keep two replicas off the same
alert, alerts parked while their site cannot be served, the work orders' statuses from the
webhooks, and the figures the KPIs are computed from.

Every method of the store but ``begin_event_async`` is synchronous and may block on disk or
network; the hub calls them through ``asyncio.to_thread``. The ledger of one alert
(:class:`HubLedger`) is async: each backend reaches its database its own way. Every write is
committed before the method returns.

Also here, what both backends share: :class:`HubLedger` (the ledger's bookkeeping in memory),
the conversion of their rows into the records above, and the KPI queries with their merge.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from edge_agent.errors import EdgeAgentError
from edge_agent.hub.store_lifecycle import AlarmEventRecord, LifecycleKpis

SCHEMA_VERSION: Final = 1
"""The hub store's tables, in SQLite and PostgreSQL alike (0.1.0's carried none: version 1);
see :mod:`edge_agent.common.schema_version`."""

CLOSED_STATUSES = frozenset({"DONE", "CANCELED"})

# A parked event is handed out only when no earlier event of its alert is parked, whoever
# holds that one: a cleared applied before its activation (two replicas draining, or one
# whose earlier try failed) found no work order and its news was lost. ``{p}`` the table
# prefix, ``{x}`` the driver's placeholder, ``{lock}`` PostgreSQL's row lock.
TAKE_PENDING_SQL = (
    "UPDATE {p}pending SET owner = {x}, until_ns = {x}, attempts = attempts + 1 "
    "WHERE event_id IN (SELECT q.event_id FROM {p}pending q WHERE q.site = {x} "
    "AND q.until_ns < {x} AND NOT EXISTS (SELECT 1 FROM {p}pending p "
    "WHERE p.alert_id = q.alert_id AND (p.received_ns < q.received_ns "
    "OR (p.received_ns = q.received_ns AND p.event_id < q.event_id))) "
    "ORDER BY q.received_ns, q.event_id LIMIT {x}{lock}) "
    "RETURNING event_id, site, alert_id, payload, attempts, received_ns"
)
"""Work order statuses after which a new activation makes a new work order."""


class StoreError(EdgeAgentError):
    """The store cannot be reached or written (the hub retries; nothing is acknowledged)."""


class StoreRejected(StoreError):
    """The store refused these values for good (a constraint, a value out of range): retrying
    cannot help, so the message that carried them is a poison message, not a store outage."""


REJECTED_ACTION = "rejected"
"""The action stored for an event the hub answered ``rejected`` (``rejected:<reason>``)."""


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

    @property
    def status(self) -> str:
        """The status the event was answered with: ``rejected`` or ``ok``."""
        rejected = self.action == "failed" or self.action.startswith(REJECTED_ACTION)
        return "rejected" if rejected else "ok"

    @property
    def reason(self) -> str | None:
        """Why a rejected event was rejected (None for an applied one)."""
        if self.action == "failed":
            return "maintainx_refused"
        head, _, reason = self.action.partition(":")
        return (reason or "rejected") if head == REJECTED_ACTION else None


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
    foreign: bool = False
    """``begin_event(..., site=...)`` found the alert or event id used first by another
    site: nothing else was read or written (the message is rejected)."""


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
class ParkedEvent:
    """A parked event as ``hub HUB.yaml parked`` shows it (no payload)."""

    site: str
    event_id: str
    alert_id: str
    reason: str
    received_ns: int
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
    # The alarm lifecycle (issue 13; see store_lifecycle): repairs verified or reopened,
    # those verified and never reopened, and the mean time from raised to normal.
    repairs_judged: int = 0
    first_time_fixes: int = 0
    first_time_fix_rate: float | None = None
    time_to_normal_s: float | None = None


class HubStore(Protocol):
    """The hub's durable state. Implementations: :class:`~.store_sqlite.SqliteHubStore`,
    :class:`~.store_postgres.PostgresHubStore`."""

    def ledger(
        self, alert: AlertRecord, start: EventStart | None = None, owner: str | None = None
    ) -> HubLedger:
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
        site: str | None = None,
    ) -> EventStart:
        """``result_of``, then (``check_pending``) ``has_pending``, then ``claim`` and
        ``record_alert``, stopping at the first that decides: one call instead of four. With
        ``begin_create`` (an event that will create the work order if the alert has none), a
        store may also begin the create in the same transaction (``create_begun``). With
        ``site``, first :meth:`sites_of`: ids another site used first answer ``foreign``
        and nothing else is done (one hand-off to the store for both, issue 16)."""
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
        site: str | None = None,
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

    def sites_of(self, alert_id: str, event_id: str) -> set[str]:
        """The sites that used ``alert_id`` or ``event_id`` before (ids are a site's own:
        another site naming them must not reach that site's work order or answers)."""
        ...

    async def sites_of_async(self, alert_id: str, event_id: str) -> set[str]:
        """:meth:`sites_of` for the event loop (SQLite hands it straight to its writer
        thread, no helper thread between; PostgreSQL runs it in a worker thread)."""
        ...

    def result_of(self, event_id: str) -> StoredResult | None:
        """The stored result of an event already applied."""
        ...

    def record_rejection(self, event_id: str, alert_id: str, reason: str) -> None:
        """Remember that an event was answered ``rejected`` (a poison message), so that a
        redelivery is answered from this record and not processed again."""
        ...

    def failure(self) -> str | None:
        """Why the store can no longer work at all (its writer died), else None."""
        ...

    def park(
        self, site: str, event_id: str, alert_id: str, payload: str, reason: str, hold_ns: int = 0
    ) -> None:
        """Keep an event to apply later (the first park of an event wins). ``hold_ns``: it is
        handed out no sooner than this from now (a parked event's hold is only lengthened)."""
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

    def sites_of_work_order(self, work_order_id: int) -> list[str]:
        """The sites whose alerts made a work order with this id (one, unless several
        MaintainX organizations numbered theirs alike)."""
        ...

    def parked(self, site: str | None, limit: int) -> list[ParkedEvent]:
        """Up to ``limit`` parked events (of ``site``, or all), oldest first."""
        ...

    def apply_status(
        self, delivery_key: str, site: str, work_order_id: int, status: str, occurred_ns: int
    ) -> WorkOrderRef | None:
        """Record a webhook's status change. None when the delivery was seen before or the
        work order is not one this hub created; a status older than the one recorded is
        kept as a delivery but does not move the status back."""
        ...

    def kpis(self, since_ns: int = 0) -> list[KpiRow]:
        """Per site and asset, over the alerts raised and work orders created since
        ``since_ns`` (0: all)."""
        ...

    def record_alarm_event(self, record: AlarmEventRecord) -> None:
        """Keep one lifecycle, verdict or cleared event (once per event id)."""
        ...

    def prune_events(self, older_than_ns: int, keep_newest_ns: int | None = None) -> int:
        """Forget events applied before ``older_than_ns`` (wall clock); with
        ``keep_newest_ns``, only those also that long before the newest event (a wall clock
        set years ahead must not forget them all). The rows removed. Alerts keep their work
        order: a resent activation still finds it."""
        ...

    def close(self) -> None: ...


class HubLedger(abc.ABC):
    """The :class:`~edge_agent.maintainx.ledger.WorkOrderLedger` of one alert, what it does
    the same on either backend: answer on the event loop from the :class:`EventStart` that
    ``begin_event`` found and from a work order recorded but not yet committed, and leave
    the rest to the backend's coroutines (the ``_stored_*`` and ``_commit_created`` hooks,
    ``begin_create`` and ``mark_done``), which decide how to reach their database without
    blocking the loop. ``mark_done`` commits a recorded work order with its event and sets
    :attr:`released` when it released the claim."""

    def __init__(self, alert: AlertRecord, start: EventStart | None, owner: str | None) -> None:
        self._alert = alert
        self._start = start
        self._owner = owner
        self.released = False
        """``mark_done`` released the owner's claim (the consumer need not)."""
        # A recorded work order waits here for mark_done, which commits both in one
        # transaction: one commit (fsync) instead of two. Lost in a crash, it costs nothing but a
        # lookup: begin_create was committed before the create was sent, so the next attempt
        # searches MaintainX for the work order before creating one.
        self._created: tuple[str, int, int] | None = None  # (alert, work order, recorded ns)

    async def work_order_for(self, alert_id: str) -> int | None:
        if self._created is not None and self._created[0] == alert_id:
            return self._created[1]
        if self._start is not None and alert_id == self._alert.alert_id:
            start, self._start = self._start, None
            return start.work_order_id
        return await self._stored_work_order(alert_id)

    async def is_done(self, event_id: str) -> bool:
        if self._start is not None and self._start.claimed:
            return False  # begin_event just found no result, and we hold the claim
        return await self._stored_event(event_id)

    async def record_created(self, alert_id: str, work_order_id: int) -> None:
        await self.flush()
        self._created = (alert_id, int(work_order_id), time.time_ns())

    async def abandon_create(self, alert_id: str) -> None:
        """Ignored: the hub looks its work orders up after every failed create (the
        protocol allows it; its behaviour since the first release)."""
        return None

    @property
    def unflushed(self) -> bool:
        """A work order was recorded that no transaction has committed yet."""
        return self._created is not None

    async def flush(self) -> None:
        """Commit a recorded work order that no ``mark_done`` has committed yet."""
        if self._created is not None:
            await self._commit_created(self._created)
            self._created = None

    @abc.abstractmethod
    async def _stored_work_order(self, alert_id: str) -> int | None:
        """The work order id stored for the alert."""

    @abc.abstractmethod
    async def begin_create(self, alert_id: str) -> bool:
        """See :meth:`WorkOrderLedger.begin_create`."""

    @abc.abstractmethod
    async def mark_done(self, event_id: str, result: str) -> None:
        """See :meth:`WorkOrderLedger.mark_done`; sets ``released`` when it released the
        owner's claim."""

    @abc.abstractmethod
    async def _stored_event(self, event_id: str) -> bool:
        """True when the event's result is stored."""

    @abc.abstractmethod
    async def _commit_created(self, created: tuple[str, int, int]) -> None:
        """Write a recorded work order (its alert's id and its status row), committed."""


FOREIGN_START: Final = EventStart(None, False, False, foreign=True)
"""What ``begin_event(..., site=...)`` answers for another site's ids."""


def foreign_sites(rows: Sequence[Any], site: str) -> bool:
    """From the rows of the ids' sites (one column): True when a site other than ``site``
    used them first."""
    return any(str(row[0]) != site for row in rows)


def earlier_create_unconfirmed(row: Sequence[Any] | None) -> bool:
    """From the ``(work_order_id, create_attempts)`` a create attempt was just counted into:
    True when an earlier attempt was begun and no work order was recorded since."""
    return row is not None and row[0] is None and int(row[1]) > 1


# Rows into records, the drivers' values converted to the records' types.


def opt_int(value: Any) -> int | None:
    """A nullable integer column."""
    return None if value is None else int(value)


def stored_result(event_id: str, alert_id: Any, action: Any, work_order_id: Any) -> StoredResult:
    return StoredResult(event_id, str(alert_id), str(action), opt_int(work_order_id))


def work_order_ref(
    site: str, work_order_id: int, alert_id: Any, asset: Any, rule: Any, status: Any
) -> WorkOrderRef:
    return WorkOrderRef(site, work_order_id, str(alert_id), str(asset), str(rule), str(status))


def pending_events(rows: list[Any]) -> list[PendingEvent]:
    """Rows ``(event_id, site, alert_id, payload, attempts, received_ns)``, oldest first."""
    rows.sort(key=lambda r: (r[5], r[0]))
    return [PendingEvent(r[0], r[1], r[2], r[3], int(r[4])) for r in rows]


# The KPIs' two queries; ``{p}`` is the backend's table prefix ("" on SQLite).
# ``{since}`` is an int (nanoseconds), formatted in: no text from outside reaches the SQL.
KPI_ALERTS_SQL = (
    "SELECT site, asset, count(*) FROM {p}alerts WHERE raised_ns >= {since:d} GROUP BY site, asset"
)
KPI_ORDERS_SQL = (
    "SELECT site, asset, count(*), "
    "sum(CASE WHEN status NOT IN ('DONE', 'CANCELED') THEN 1 ELSE 0 END), "
    "sum(CASE WHEN status = 'DONE' THEN 1 ELSE 0 END), "
    "avg(CASE WHEN status = 'DONE' THEN done_ns - created_ns END) "
    "FROM {p}work_orders WHERE created_ns >= {since:d} GROUP BY site, asset"
)
PARKED_COLUMNS = "site, event_id, alert_id, reason, received_ns, attempts"


def parked_events(rows: list[Any]) -> list[ParkedEvent]:
    return [
        ParkedEvent(str(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), int(r[5])) for r in rows
    ]


def merge_kpis(
    alerts: list[Any],
    orders: list[Any],
    lifecycle: dict[tuple[str, str], LifecycleKpis] | None = None,
) -> list[KpiRow]:
    """Join the rows of :data:`KPI_ALERTS_SQL` ``(site, asset, alerts)`` and of
    :data:`KPI_ORDERS_SQL` ``(site, asset, created, open, done, mttr_ns)``, and the
    lifecycle's figures (:func:`~edge_agent.hub.store_lifecycle.lifecycle_kpis`)."""
    lifecycle = lifecycle or {}
    by_key: dict[tuple[str, str], list[Any]] = {key: [0, 0, 0, 0, None] for key in lifecycle}
    for site, asset, count in alerts:
        by_key[(str(site), str(asset))] = [int(count), 0, 0, 0, None]
    for site, asset, created, open_, done, mttr_ns in orders:
        entry = by_key.setdefault((str(site), str(asset)), [0, 0, 0, 0, None])
        entry[1:] = [
            int(created),
            int(open_ or 0),
            int(done or 0),
            None if mttr_ns is None else float(mttr_ns) / 1e9,
        ]
    rows = []
    for (site, asset), values in sorted(by_key.items()):
        more = lifecycle.get((site, asset), LifecycleKpis())
        created, open_, done, mttr_s = values[1:]
        rows.append(
            KpiRow(
                site,
                asset,
                alerts_raised=values[0],
                work_orders_created=created,
                open_backlog=open_,
                work_orders_done=done,
                mttr_s=mttr_s,
                repairs_judged=more.repairs_judged,
                first_time_fixes=more.first_time_fixes,
                first_time_fix_rate=more.first_time_fix_rate,
                time_to_normal_s=more.time_to_normal_s,
            )
        )
    return rows
