"""The alarm lifecycle at the hub (issue 13): the events it keeps and the KPIs drawn from them,
shared by both store backends (SQLite and PostgreSQL).

Every audit event (shelved, unshelved, out_of_service, returned_to_service, acknowledged),
every verdict on a repair (verified, reopened) and every return to normal (cleared) is kept
in ``alarm_events``, once per event id (a redelivery inserts nothing). From them:

- **first-time-fix rate**: of the work orders whose repair was judged (verified or
  reopened), the share verified and never reopened;
- **time to normal**: the mean time from an alarm raised to its return to normal.

Both per site and asset, beside MTTR (:mod:`edge_agent.hub.kpis` presents them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from edge_agent.wire.alert import LIFECYCLE_EVENTS

RECORDED_EVENTS: Final = LIFECYCLE_EVENTS | {"cleared"}
"""The alert events the hub keeps in ``alarm_events``."""

# ``{p}`` the backend's table prefix, ``{n}`` its index prefix, ``{big}`` its 64-bit
# integer type. The indexes cover the KPI queries (they read no table row): the hub runs
# them every few seconds, on SQLite on its writer thread.
ALARM_EVENTS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS {p}alarm_events (
    event_id TEXT PRIMARY KEY, site TEXT NOT NULL, alert_id TEXT NOT NULL, asset TEXT NOT NULL,
    rule TEXT NOT NULL, event TEXT NOT NULL, work_order_id {big}, by_whom TEXT, reason TEXT,
    time_ns {big} NOT NULL, recorded_ns {big} NOT NULL
);
CREATE INDEX IF NOT EXISTS {n}alarm_events_kpi
    ON {p}alarm_events (event, site, asset, work_order_id, time_ns);
CREATE INDEX IF NOT EXISTS {n}alarm_events_alert ON {p}alarm_events (event, alert_id, time_ns);
"""
INSERT_ALARM_EVENT_SQL: Final = (
    "INSERT INTO {p}alarm_events (event_id, site, alert_id, asset, rule, event, work_order_id, "
    "by_whom, reason, time_ns, recorded_ns) VALUES ({x}, {x}, {x}, {x}, {x}, {x}, {x}, {x}, {x}, "
    "{x}, {x}) ON CONFLICT (event_id) DO NOTHING"
)
# ``{since}`` is an int (nanoseconds), formatted in: no text from outside reaches the SQL.
KPI_FIRST_TIME_FIX_SQL: Final = (
    "SELECT site, asset, count(*), sum(CASE WHEN reopened = 0 THEN 1 ELSE 0 END) FROM ("
    "SELECT site, asset, work_order_id, "
    "max(CASE WHEN event = 'reopened' THEN 1 ELSE 0 END) AS reopened "
    "FROM {p}alarm_events WHERE event IN ('verified', 'reopened') "
    "AND work_order_id IS NOT NULL AND time_ns >= {since:d} "
    "GROUP BY site, asset, work_order_id) AS judged GROUP BY site, asset"
)
KPI_TIME_TO_NORMAL_SQL: Final = (
    "SELECT a.site, a.asset, avg(e.time_ns - a.raised_ns) FROM {p}alarm_events e "
    "JOIN {p}alerts a ON a.alert_id = e.alert_id WHERE e.event = 'cleared' "
    "AND a.raised_ns >= {since:d} AND e.time_ns >= a.raised_ns GROUP BY a.site, a.asset"
)


@dataclass(frozen=True)
class AlarmEventRecord:
    """One kept event, as the site sent it (``time_ns`` is the event's time at the site)."""

    site: str
    event_id: str
    alert_id: str
    asset: str
    rule: str
    event: str
    work_order_id: int | None
    by: str | None
    reason: str | None
    time_ns: int

    def row(self, recorded_ns: int) -> tuple[Any, ...]:
        """The values of :data:`INSERT_ALARM_EVENT_SQL`, in order."""
        return (
            self.event_id,
            self.site,
            self.alert_id,
            self.asset,
            self.rule,
            self.event,
            self.work_order_id,
            self.by,
            self.reason,
            self.time_ns,
            recorded_ns,
        )


def alarm_event_record(site: str, message: Mapping[str, Any], time_ns: int) -> AlarmEventRecord:
    """The record of a checked alert message (bounds already checked by the alert schema)."""
    work_order_id = message.get("work_order_id")
    by = message.get("by")
    reason = message.get("reason")
    asset = message.get("asset") or {}
    return AlarmEventRecord(
        site=site,
        event_id=str(message["event_id"]),
        alert_id=str(message["alert_id"]),
        asset=str(asset.get("id") or "") if isinstance(asset, Mapping) else "",
        rule=str(message["rule"]),
        event=str(message["event"]),
        work_order_id=work_order_id if type(work_order_id) is int else None,
        by=by if isinstance(by, str) else None,
        reason=reason if isinstance(reason, str) else None,
        time_ns=time_ns,
    )


@dataclass(frozen=True)
class LifecycleKpis:
    """The lifecycle's figures for one (site, asset)."""

    repairs_judged: int = 0
    """Work orders whose repair was verified or reopened."""
    first_time_fixes: int = 0
    """Of those, verified and never reopened."""
    time_to_normal_s: float | None = None

    @property
    def first_time_fix_rate(self) -> float | None:
        return None if not self.repairs_judged else self.first_time_fixes / self.repairs_judged


def lifecycle_kpis(
    first_time: list[Any], to_normal: list[Any]
) -> dict[tuple[str, str], LifecycleKpis]:
    """Join the rows of :data:`KPI_FIRST_TIME_FIX_SQL` ``(site, asset, judged, first)`` and
    :data:`KPI_TIME_TO_NORMAL_SQL` ``(site, asset, mean_ns)`` by (site, asset)."""
    judged: dict[tuple[str, str], tuple[int, int]] = {
        (str(site), str(asset)): (int(count), int(first or 0))
        for site, asset, count, first in first_time
    }
    normal: dict[tuple[str, str], float] = {
        (str(site), str(asset)): float(mean_ns) / 1e9
        for site, asset, mean_ns in to_normal
        if mean_ns is not None
    }
    return {
        key: LifecycleKpis(*judged.get(key, (0, 0)), normal.get(key))
        for key in judged.keys() | normal.keys()
    }
