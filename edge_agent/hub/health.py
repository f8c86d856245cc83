"""What ``/readyz`` says about the hub and its sites.

``ready`` is the replica's own readiness: broker connected, alerts subscribed, store
reachable, no failure. Per-site trouble (blocked, offline, quiet, key refused, parked events)
and unknown sites are in the body and in the metrics, never in ``ready``: one site's bad key
must not take the replica out of a load balancer.

The store is probed every refresh (``Hub.refresh``) with a bounded wait: a PostgreSQL that is
down or does not answer within :data:`STORE_PROBE_S` makes the replica unready with the
reason, until a probe succeeds again.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from edge_agent.alerts import format_time_ns
from edge_agent.hub.presence import is_quiet

if TYPE_CHECKING:
    from edge_agent.hub.app import Hub
    from edge_agent.hub.sites import SiteRuntime

STORE_PROBE_S: Final = 5.0
"""A store read slower than this counts as the store being unavailable."""


class StoreHealth:
    """The last store probe's outcome and the count of failed store calls."""

    def __init__(self) -> None:
        self.error: str | None = None
        self.errors = 0

    def failed(self, error: str) -> None:
        self.errors += 1
        self.error = error

    def ok(self) -> None:
        self.error = None


def site_view(site: SiteRuntime, parked: int, *, now_ns: int, since_ns: int) -> dict[str, Any]:
    """The site's entry in ``/readyz``: its status plus parked count, quiet and trouble."""
    view = site.status()
    last = site.presence.last_seen_ns
    quiet = is_quiet(last, since_ns, now_ns, site.config.quiet_after)
    view["last_seen"] = format_time_ns(last) if last else None
    view["quiet"] = quiet
    view["parked"] = parked
    trouble = []
    if view["presence"] != "online":
        trouble.append(view["presence"])  # offline or unknown
    if quiet:
        trouble.append("quiet")
    if view["credentials"] != "ok":
        trouble.append(f"credentials {view['credentials']}")
    if view["blocked"]:
        trouble.append(f"blocked ({view['block_reason']})")
    if parked:
        trouble.append(f"{parked} parked")
    view["trouble"] = trouble
    return view


def readiness(hub: Hub) -> tuple[bool, dict[str, Any]]:
    """(ready, body) for ``/readyz``."""
    reasons = []
    if hub.failure is not None:
        reasons.append(f"hub failed: {hub.failure}")
    if not hub.mqtt_connected:
        reasons.append("not connected to the MQTT broker")
    elif hub.link is not None and not hub.link.subscribed:
        reasons.append("not yet subscribed to the alerts")
    if hub.store is None:
        reasons.append("dedup store not open")
    elif hub.store_health.error is not None:
        reasons.append(f"dedup store unavailable: {hub.store_health.error}")
    now_ns = time.time_ns()
    sites = {
        site_id: site_view(
            site, hub.pending_counts.get(site_id, 0), now_ns=now_ns, since_ns=hub.started_ns
        )
        for site_id, site in hub.sites.items()
    }
    for site_id, view in sites.items():
        view["key_check"] = hub.key_checks.state(site_id)
        plant = hub.plant_consumer.stats.by_site.get(site_id) if hub.plant_consumer else None
        if plant is not None:  # meter readings and asset statuses (issue 14)
            view["plant"] = {
                **vars(plant),
                "rejected": dict(plant.rejected),
                "not_sent": dict(plant.not_sent),
            }
    unknown = dict(hub.consumer.unknown.counts) if hub.consumer is not None else {}
    return not reasons, {
        "ready": not reasons,
        "reasons": reasons,
        "hub": hub.replica_id,
        "group": hub.config.hub.group,
        "store": {"available": hub.store_health.error is None, "error": hub.store_health.error},
        "sites": sites,
        "trouble": [f"{s}: {', '.join(v['trouble'])}" for s, v in sites.items() if v["trouble"]],
        "unknown_sites": unknown,
        "reload": hub.reloader.report.as_dict() if hub.reloader is not None else None,
    }
