"""Availability and MTBF per asset, from the asset status changes the hub posted (issue 14).

Each change holds from its ``startedAt`` until the next change of the asset (the last one
until now), as MaintainX ends a status when the next starts. Over the period observed (from
the asset's first change, or ``since``, to now):

- **availability** = time ``ONLINE`` / time observed (planned downtime counts as down: it is
  shown apart, so an operator can tell a planned stop from a breakdown);
- **MTBF** (mean time between failures) = time ``ONLINE`` / failures, a failure being each
  entry into ``OFFLINE`` ``UNPLANNED`` (a planned stop that turns unplanned is one; an
  unplanned one that goes on is not another). None without a failure.

Pure: the rows and the time come in, the figures go out (:func:`asset_kpis`); presented as a
table or JSON beside the alert KPIs (``edge-agent hub HUB.yaml kpis``) and in ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import groupby
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edge_agent.hub.kpis import duration_cell
from edge_agent.hub.plant_store import StatusRow

if TYPE_CHECKING:
    from edge_agent.hub.app import Hub

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class AssetKpiRow:
    """Availability figures of one (site, asset)."""

    site: str
    asset: str
    status: str
    """The latest status (``ONLINE``, ``OFFLINE``; ``OFFLINE PLANNED`` when planned)."""
    observed_s: float
    uptime_s: float
    planned_downtime_s: float
    unplanned_downtime_s: float
    failures: int
    availability: float | None
    """ONLINE time / time observed; None when nothing was observed yet."""
    mtbf_s: float | None


def asset_kpis(rows: Sequence[StatusRow], now_ns: int, since_ns: int = 0) -> list[AssetKpiRow]:
    """The figures of every asset with a status change, over ``[since_ns, now_ns]``."""
    ordered = sorted(rows, key=lambda r: (r.site, r.asset, r.started_ns, r.message_id))
    out = []
    for (site, asset), changes in groupby(ordered, key=lambda r: (r.site, r.asset)):
        out.append(_one(site, asset, list(changes), now_ns, since_ns))
    return out


def _one(
    site: str, asset: str, changes: list[StatusRow], now_ns: int, since_ns: int
) -> AssetKpiRow:
    held = {"up": 0, "planned": 0, "unplanned": 0}
    failures = 0
    previous: str | None = None
    for index, change in enumerate(changes):
        state = _state(change)
        end = changes[index + 1].started_ns if index + 1 < len(changes) else now_ns
        start = max(change.started_ns, since_ns)
        end = min(end, now_ns)
        if end > start:
            held[state] += end - start
        if state == "unplanned" and previous != "unplanned" and since_ns <= change.started_ns:
            failures += 1
        previous = state
    observed = sum(held.values())
    last = changes[-1]
    latest = "OFFLINE PLANNED" if _state(last) == "planned" else last.status
    return AssetKpiRow(
        site=site,
        asset=asset,
        status=latest,
        observed_s=observed / NS_PER_S,
        uptime_s=held["up"] / NS_PER_S,
        planned_downtime_s=held["planned"] / NS_PER_S,
        unplanned_downtime_s=held["unplanned"] / NS_PER_S,
        failures=failures,
        availability=held["up"] / observed if observed > 0 else None,
        mtbf_s=held["up"] / NS_PER_S / failures if failures else None,
    )


def _state(change: StatusRow) -> str:
    if change.status == "ONLINE":
        return "up"
    return "planned" if change.downtime_type == "PLANNED" else "unplanned"


# ------------------------------------------------------------------ presenting


def asset_kpis_json(rows: Sequence[AssetKpiRow]) -> list[dict[str, Any]]:
    """The rows as JSON objects (the ``assets`` list of ``kpis --json``)."""
    return [asdict(row) for row in rows]


def asset_kpis_table(rows: Sequence[AssetKpiRow]) -> str:
    """A plain text table, one line per (site, asset)."""
    header = ("SITE", "ASSET", "STATUS", "AVAILABILITY", "MTBF", "FAILURES", "DOWN (PLANNED)")
    lines = [
        (
            row.site,
            row.asset,
            row.status,
            "-" if row.availability is None else f"{row.availability * 100:.2f}%",
            duration_cell(row.mtbf_s),
            str(row.failures),
            f"{duration_cell(row.unplanned_downtime_s)} ({duration_cell(row.planned_downtime_s)})",
        )
        for row in rows
    ]
    widths = [max([len(h), *(len(line[i]) for line in lines)]) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out += [
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    if not lines:
        out.append("(no asset status changes recorded yet)")
    return "\n".join(out)


def plant_metrics(hub: Hub) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
    """The hub's plant data counters and asset KPIs, for ``/metrics``."""
    received = CounterMetricFamily(
        "edge_agent_hub_plant_received", "plant data messages taken in", labels=["site", "kind"]
    )
    posted = CounterMetricFamily(
        "edge_agent_hub_plant_posted", "plant data posted to MaintainX", labels=["site", "kind"]
    )
    rejected = CounterMetricFamily(
        "edge_agent_hub_plant_rejected", "plant data rejected", labels=["site", "reason"]
    )
    deferred = CounterMetricFamily(
        "edge_agent_hub_plant_deferred",
        "plant data not served now (site blocked, MaintainX down): left to the agent's resend",
        labels=["site"],
    )
    duplicates = CounterMetricFamily(
        "edge_agent_hub_plant_duplicates", "plant data seen before, answered", labels=["site"]
    )
    consumer = hub.plant_consumer
    if consumer is not None:
        for site_id, c in sorted(consumer.stats.by_site.items()):
            received.add_metric([site_id, "reading"], c.readings_received)
            received.add_metric([site_id, "status"], c.statuses_received)
            posted.add_metric([site_id, "reading"], c.readings_posted)
            posted.add_metric([site_id, "status"], c.statuses_posted)
            deferred.add_metric([site_id], c.deferred)
            duplicates.add_metric([site_id], c.duplicates)
            for reason, n in sorted(c.rejected.items()):
                rejected.add_metric([site_id, reason], n)
        for reason, n in sorted(consumer.stats.siteless_rejections.items()):
            rejected.add_metric(["", reason], n)
    yield from (received, posted, rejected, deferred, duplicates)
    availability = GaugeMetricFamily(
        "edge_agent_hub_kpi_availability",
        "time ONLINE / time observed, from the asset status changes (0..1)",
        labels=["site", "asset"],
    )
    mtbf = GaugeMetricFamily(
        "edge_agent_hub_kpi_mtbf_seconds",
        "time ONLINE / unplanned failures",
        labels=["site", "asset"],
    )
    failures = GaugeMetricFamily(
        "edge_agent_hub_kpi_failures", "entries into unplanned downtime", labels=["site", "asset"]
    )
    for row in hub.asset_kpi_rows:
        labels = [row.site, row.asset]
        if row.availability is not None:
            availability.add_metric(labels, row.availability)
        if row.mtbf_s is not None:
            mtbf.add_metric(labels, row.mtbf_s)
        failures.add_metric(labels, row.failures)
    yield from (availability, mtbf, failures)
