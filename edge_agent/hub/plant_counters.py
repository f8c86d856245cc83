"""What the hub counts of plant data, per site (``/readyz``, ``/metrics``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class PlantCounters:
    """One site's plant data, since the hub started."""

    readings_received: int = 0
    readings_posted: int = 0
    statuses_received: int = 0
    statuses_posted: int = 0
    statuses_found: int = 0
    """Status changes MaintainX had already (an earlier post whose answer was lost)."""
    duplicates: int = 0
    deferred: int = 0
    """Not served now (site blocked, MaintainX down): left to the agent's resend."""
    not_sent: Counter[str] = field(default_factory=Counter)
    """Readings the 3-day rule kept from MaintainX: ``superseded``, ``stale_gauge``."""
    meters_ready: int = 0
    """(Site, meter) pairs whose MaintainX meter and triggers this replica has seen ready."""
    rejected: Counter[str] = field(default_factory=Counter)
    key_refused_until: float = 0.0
    """Monotonic time until which the site's plant data waits: MaintainX refused its key
    (401/403) on a plant data request. The site itself is not blocked: a key refused for
    meters only must not park its alerts (they block the site on their own refusal)."""
    key_refused: str | None = None

    def refuse_key(self, error: str, now: float, hold_s: float) -> bool:
        """Hold this site's plant data for ``hold_s``; True when it was not held already."""
        fresh = self.key_refused is None
        self.key_refused, self.key_refused_until = error, now + hold_s
        return fresh

    def key_held(self, now: float) -> bool:
        return self.key_refused is not None and now < self.key_refused_until

    def key_accepted(self) -> None:
        self.key_refused, self.key_refused_until = None, 0.0


@dataclass
class PlantStats:
    by_site: dict[str, PlantCounters] = field(default_factory=dict)
    siteless_rejections: Counter[str] = field(default_factory=Counter)
    store_errors: int = 0
    poison: int = 0

    def site(self, site_id: str) -> PlantCounters:
        return self.by_site.setdefault(site_id, PlantCounters())
