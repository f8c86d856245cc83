"""What a device taught the plan: the sensors whose address it refused ("illegal data
address"), the gaps between registers it refused, and the plan that leaves both out.

A refused sensor is left out of the plan until its re-probe is due; a refused gap becomes
a barrier that no block reads across.
"""

from __future__ import annotations

from collections.abc import Mapping

from edge_agent.config.models import RegisterTable
from edge_agent.sources.modbus.plan import BlockRead, Limits, Plan, SensorAddress, build_plan


class RefusedAddresses:
    """The refused sensors and gaps of one connection, and the plan that avoids them."""

    def __init__(self, addresses: Mapping[str, SensorAddress], limits: Limits) -> None:
        self._addresses = addresses
        self._limits = limits
        #: sensor id -> monotonic time of its next re-probe
        self.retry_at: dict[str, float] = {}
        self._barriers: dict[tuple[int, RegisterTable], set[int]] = {}
        self._plan: Plan | None = None

    @property
    def plan(self) -> Plan:
        """The plan the next cycle sends (sensors refused by the device left out)."""
        if self._plan is None:
            refused_ids = self.retry_at
            active = [a for sid, a in self._addresses.items() if sid not in refused_ids]
            walls = {key: set(found) for key, found in self._barriers.items()}
            for sensor_id in refused_ids:
                # Never read through a refused sensor's address as part of a gap either.
                refused = self._addresses[sensor_id]
                key = (refused.unit_id, refused.register.table)
                walls.setdefault(key, set()).add(refused.register.address)
            barriers = {key: sorted(found) for key, found in walls.items()}
            self._plan = build_plan(active, self._limits, barriers)
        return self._plan

    def set_plan(self, plan: Plan) -> None:
        self._plan = plan

    def forget_plan(self) -> None:
        """The next :attr:`plan` is built anew from what is refused now."""
        self._plan = None

    def probe(self, sensor_id: str) -> BlockRead:
        """A block that reads only ``sensor_id`` (its re-probe)."""
        return build_plan([self._addresses[sensor_id]], self._limits).blocks[0]

    def add_barrier(self, unit_id: int, table: RegisterTable, address: int) -> None:
        """No block reads across ``address``: the gap before it was refused."""
        self._barriers.setdefault((unit_id, table), set()).add(address)
