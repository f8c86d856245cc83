"""Prometheus metrics of one hub, read from its live state at scrape time.

A collector on the hub's own ``CollectorRegistry`` (never the global one: tests run two
replicas in one process). Everything per site carries a ``site`` label, so one site's refused
key or exhausted rate limit is visible as that site's, and the KPIs carry ``site`` and
``asset``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edge_agent.common.time_units import NS_PER_S
from edge_agent.hub.asset_kpis import plant_metrics
from edge_agent.hub.presence import is_quiet

if TYPE_CHECKING:
    from edge_agent.hub.app import Hub


class HubCollector(Collector):
    """Collects every ``edge_agent_hub_*`` metric from one running :class:`Hub`."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        hub = self._hub
        up = GaugeMetricFamily("edge_agent_hub_mqtt_connected", "1 when connected to the broker")
        up.add_metric([], 1.0 if hub.mqtt_connected else 0.0)
        yield up
        ready = GaugeMetricFamily(
            "edge_agent_hub_ready", "1 when this replica's /readyz answers 200"
        )
        ready.add_metric([], 1.0 if hub.readiness()[0] else 0.0)
        yield ready
        store_up = GaugeMetricFamily(
            "edge_agent_hub_store_available", "1 when the last probe of the dedup store answered"
        )
        store_up.add_metric([], 1.0 if hub.store_health.error is None else 0.0)
        yield store_up
        store_errors = CounterMetricFamily(
            "edge_agent_hub_store_errors", "store calls that failed (outage, not a refusal)"
        )
        consumer_errors = hub.consumer.stats.store_errors if hub.consumer is not None else 0
        store_errors.add_metric([], hub.store_health.errors + consumer_errors)
        yield store_errors
        unknown = CounterMetricFamily(
            "edge_agent_hub_unknown_site_messages",
            "messages from site ids the hub file does not configure",
            labels=["site"],
        )
        if hub.consumer is not None:
            for site_id, n in sorted(hub.consumer.unknown.counts.items()):
                unknown.add_metric([site_id], n)
        yield unknown

        received = CounterMetricFamily(
            "edge_agent_hub_alerts_received", "valid alert messages received", labels=["site"]
        )
        rejected = CounterMetricFamily(
            "edge_agent_hub_alerts_rejected", "alert messages rejected", labels=["site", "reason"]
        )
        created = CounterMetricFamily(
            "edge_agent_hub_work_orders_created", "work orders created", labels=["site"]
        )
        duplicates = CounterMetricFamily(
            "edge_agent_hub_alerts_duplicate", "events seen again (result re-sent)", labels=["site"]
        )
        parked = CounterMetricFamily(
            "edge_agent_hub_alerts_parked", "events parked for later", labels=["site"]
        )
        unexpected = CounterMetricFamily(
            "edge_agent_hub_alerts_unexpected_errors",
            "live alerts whose handling raised unexpectedly (parked for one more try)",
            labels=["site"],
        )
        failed = CounterMetricFamily(
            "edge_agent_hub_alerts_failed", "events MaintainX refused for good", labels=["site"]
        )
        actions = CounterMetricFamily(
            "edge_agent_hub_events_applied", "events applied, by action", labels=["site", "action"]
        )
        pending = GaugeMetricFamily(
            "edge_agent_hub_pending", "events parked now (all replicas)", labels=["site"]
        )
        creds = GaugeMetricFamily(
            "edge_agent_hub_site_credentials_rejected",
            "1 when MaintainX refused the site's API key",
            labels=["site"],
        )
        blocked = GaugeMetricFamily(
            "edge_agent_hub_site_blocked",
            "1 while the site's MaintainX calls wait",
            labels=["site"],
        )
        limit = GaugeMetricFamily(
            "edge_agent_hub_site_rate_limit", "the key's X-Rate-Limit-Limit", labels=["site"]
        )
        remaining = GaugeMetricFamily(
            "edge_agent_hub_site_rate_limit_remaining",
            "the key's X-Rate-Limit-Remaining",
            labels=["site"],
        )
        limited = CounterMetricFamily(
            "edge_agent_hub_site_rate_limited", "429 answers for the site's key", labels=["site"]
        )
        online = GaugeMetricFamily(
            "edge_agent_hub_site_online", "1 online, 0 offline or unknown", labels=["site"]
        )
        seen = GaugeMetricFamily(
            "edge_agent_hub_site_last_seen_seconds",
            "unix time of the site's last message (status or alert), in its own time",
            labels=["site"],
        )
        quiet = GaugeMetricFamily(
            "edge_agent_hub_site_quiet",
            "1 when the site sent nothing for longer than its quiet_after",
            labels=["site"],
        )
        now_ns = time.time_ns()
        counts = hub.pending_counts
        for site_id, site in hub.sites.items():
            c = site.counters
            received.add_metric([site_id], c.alerts_received)
            created.add_metric([site_id], c.work_orders_created)
            duplicates.add_metric([site_id], c.duplicates)
            parked.add_metric([site_id], c.parked)
            unexpected.add_metric([site_id], c.unexpected_errors)
            failed.add_metric([site_id], c.failed)
            for reason, n in sorted(c.rejected.items()):
                rejected.add_metric([site_id, reason], n)
            for action, n in sorted(c.actions.items()):
                actions.add_metric([site_id, action], n)
            pending.add_metric([site_id], counts.get(site_id, 0))
            status = site.status()
            creds.add_metric([site_id], 1.0 if site.credentials_rejected else 0.0)
            blocked.add_metric([site_id], 1.0 if status["blocked"] else 0.0)
            rate = status["rate_limit"]
            if rate["limit"] is not None:
                limit.add_metric([site_id], rate["limit"])
            if rate["remaining"] is not None:
                remaining.add_metric([site_id], rate["remaining"])
            limited.add_metric([site_id], rate["rate_limited"])
            online.add_metric([site_id], 1.0 if site.presence.state == "online" else 0.0)
            seen.add_metric([site_id], site.presence.last_seen_ns / NS_PER_S)
            silent = is_quiet(
                site.presence.last_seen_ns, hub.started_ns, now_ns, site.config.quiet_after
            )
            quiet.add_metric([site_id], 1.0 if silent else 0.0)
        if hub.consumer is not None:
            for reason, count in sorted(hub.consumer.stats.siteless_rejections.items()):
                rejected.add_metric(["", reason], count)
        yield from (received, rejected, created, duplicates, parked, unexpected, failed)
        yield from (actions, pending)
        yield from (creds, blocked, limit, remaining, limited, online, seen, quiet)

        hooks = CounterMetricFamily(
            "edge_agent_hub_webhooks", "webhook deliveries by outcome", labels=["outcome"]
        )
        if hub.webhook_handler is not None:
            for outcome, n in sorted(hub.webhook_handler.outcomes.items()):
                hooks.add_metric([outcome], n)
        yield hooks

        kpi_alerts = GaugeMetricFamily(
            "edge_agent_hub_kpi_alerts_raised", "alarm episodes raised", labels=["site", "asset"]
        )
        kpi_created = GaugeMetricFamily(
            "edge_agent_hub_kpi_work_orders_created",
            "work orders created",
            labels=["site", "asset"],
        )
        kpi_open = GaugeMetricFamily(
            "edge_agent_hub_kpi_open_backlog",
            "work orders not DONE/CANCELED",
            labels=["site", "asset"],
        )
        kpi_mttr = GaugeMetricFamily(
            "edge_agent_hub_kpi_mttr_seconds",
            "mean time from work order created to DONE",
            labels=["site", "asset"],
        )
        kpi_ftf = GaugeMetricFamily(
            "edge_agent_hub_kpi_first_time_fix_ratio",
            "work orders verified without a reopen / all verified or reopened",
            labels=["site", "asset"],
        )
        kpi_normal = GaugeMetricFamily(
            "edge_agent_hub_kpi_time_to_normal_seconds",
            "mean time from an alarm raised to its return to normal",
            labels=["site", "asset"],
        )
        for row in hub.kpi_rows:
            labels = [row.site, row.asset]
            kpi_alerts.add_metric(labels, row.alerts_raised)
            kpi_created.add_metric(labels, row.work_orders_created)
            kpi_open.add_metric(labels, row.open_backlog)
            if row.mttr_s is not None:
                kpi_mttr.add_metric(labels, row.mttr_s)
            if row.first_time_fix_rate is not None:
                kpi_ftf.add_metric(labels, row.first_time_fix_rate)
            if row.time_to_normal_s is not None:
                kpi_normal.add_metric(labels, row.time_to_normal_s)
        yield from (kpi_alerts, kpi_created, kpi_open, kpi_mttr, kpi_ftf, kpi_normal)
        yield from plant_metrics(hub)
