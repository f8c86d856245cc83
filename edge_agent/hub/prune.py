"""The hub forgets applied events older than ``dedup.retention``: at start, then hourly.

Only the event table is pruned: an alert keeps its work order for ever, so an activation
sent again after the retention still finds it (no second work order). The retention is
validated to outlast every window in which an agent sends an event again
(:mod:`edge_agent.common.retention`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from edge_agent.common.retention import PRUNE_INTERVAL_S
from edge_agent.hub.plant_store import PlantStore
from edge_agent.hub.store import HubStore

log = logging.getLogger(__name__)


async def prune_once(store: HubStore, retention_ns: int) -> int:
    """Prune the events older than ``retention_ns``; the rows removed (0 after an error,
    logged: the next round tries again)."""
    cutoff = time.time_ns() - retention_ns
    try:
        # Also counted from the newest event: a wall clock set years ahead forgets nothing.
        removed = await asyncio.to_thread(store.prune_events, cutoff, retention_ns)
    except Exception as exc:
        # A store that is down (PostgreSQL restarting) is the store watch's to report;
        # pruning waits for its next round and never ends the hub.
        log.error(
            "Pruning the hub's event table failed.",
            extra={"error": str(exc), "error_type": type(exc).__name__},
        )
        return 0
    if removed:
        log.info("Hub event table pruned.", extra={"rows": removed})
    return removed


async def prune_plant_once(plant: PlantStore, retention_ns: int) -> int:
    """Forget the plant data messages answered before ``retention_ns`` (their status
    changes stay, for the KPIs); 0 after an error, logged."""
    try:
        removed = await asyncio.to_thread(plant.prune, time.time_ns() - retention_ns)
    except Exception as exc:
        log.error(
            "Pruning the hub's plant data table failed.",
            extra={"error": str(exc), "error_type": type(exc).__name__},
        )
        return 0
    if removed:
        log.info("Hub plant data table pruned.", extra={"rows": removed})
    return removed


async def prune_loop(store: HubStore, retention_ns: int, plant: PlantStore | None = None) -> None:
    """Runs until cancelled."""
    while True:
        await prune_once(store, retention_ns)
        if plant is not None:
            await prune_plant_once(plant, retention_ns)
        await asyncio.sleep(PRUNE_INTERVAL_S)
