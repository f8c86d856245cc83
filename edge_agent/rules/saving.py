"""Writing the engine's state to its store, cheaply enough to do at every transition.

Rules are always written whole; the sensors' last times, which move with every reading,
are re-encoded only on a full save or when the encoded copy is older than
SENSOR_REFRESH_NS of engine time. Sensors that an open episode, a gate or a staleness
depends on are always written fresh.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Final

from edge_agent.common.time_units import NS_PER_MINUTE
from edge_agent.rules.snapshot import encode_sensors, take_snapshot
from edge_agent.rules.store import RuleStateStore

if TYPE_CHECKING:
    from edge_agent.rules.engine import RuleEngine

# The engine's logger: operators filter on the name it had before this module split off.
log = logging.getLogger("edge_agent.rules.engine")

# How stale (in engine time) the sensors' part of a transition save may be.
SENSOR_REFRESH_NS: Final = NS_PER_MINUTE


class StateWriter:
    """Saves snapshots of one engine to ``store``, counting saves and failures."""

    __slots__ = ("errors", "saves", "sensor_base", "store")

    def __init__(self, store: RuleStateStore) -> None:
        self.store = store
        # The sensors' part of the saved state and the engine time it was encoded at.
        self.sensor_base: tuple[int, str] | None = None
        self.saves = 0
        self.errors = 0

    def save(self, engine: RuleEngine, *, full: bool, exact: bool) -> bool:
        """Write ``engine``'s state; False (logged, counted) if writing failed."""
        now = engine.now if engine.now is not None else 0
        base = self.sensor_base
        if full or base is None or now - base[0] >= SENSOR_REFRESH_NS:
            base = self.sensor_base = (now, json.dumps(encode_sensors(engine, None)))
            fresh: set[str] | None = set()
        else:
            fresh = fresh_sensors(engine)
        try:
            self.store.save(take_snapshot(engine, fresh, exact=exact), raw={"sensor_base": base[1]})
        except (OSError, ValueError) as exc:
            # The engine stays dirty: the next call tries again. The events still go out. A
            # ValueError is a value JSON cannot hold (a bug upstream): counted and logged like
            # a full disk, never the end of the rules task.
            self.errors += 1
            log.error(
                "Saving the rule state failed.",
                extra={"path": str(self.store.path), "error": str(exc)},
                exc_info=isinstance(exc, ValueError),
            )
            return False
        self.saves += 1
        return True


def fresh_sensors(engine: RuleEngine) -> set[str]:
    """Sensors whose saved times must be current: stale ones, those of rules not NORMAL, of
    gated rules (and their gates) and of series rules."""
    ids = {w.sensor.id for w in engine.watchers if w.fired}
    for rule in engine.rules:
        if rule.state or rule.gate_sensor is not None or rule.condition.series:
            ids.add(rule.sensor)
            if rule.gate_sensor is not None:
                ids.add(rule.gate_sensor)
    return ids
