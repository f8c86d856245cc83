"""Poll mode: every node read once per poll interval with the Read service, in chunks
of at most min(the server's MaxNodesPerRead, ``max_nodes_per_read``, 1000).

The session itself (connect, security, node ids, reconnect) is :mod:`.source`'s; this
module gets a connected client and raises :class:`~.failures.SessionLost` when the session
must be rebuilt (a transport failure, too many timeouts in a row).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping

from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from edge_agent.interfaces import ConnectionStats, ReadingSink
from edge_agent.readings import Reading, bad
from edge_agent.sources.opcua.failures import TRANSPORT_ERRORS, SessionLost, describe, status_name
from edge_agent.sources.opcua.logger import log
from edge_agent.sources.opcua.values import ReadingFrom

HARD_MAX_NODES_PER_READ = 1000
# Consecutive read timeouts before the session is considered dead and rebuilt.
MAX_CONSECUTIVE_TIMEOUTS = 3
OVERRUN_LOG_INTERVAL_S = 60.0
MAX_NODES_PER_READ_NODE = ua.NodeId(
    ua.Int32(ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead)
)


class PollMode:
    """``mode: poll`` on one connected session; also the one-shot read of ``read_once``."""

    def __init__(
        self,
        name: str,
        stats: ConnectionStats,
        poll_s: float,
        max_nodes_per_read: int,
        reading_from: ReadingFrom,
        bad_all: Callable[[str], list[Reading]],
    ) -> None:
        self._name = name
        self._stats = stats
        self._poll_s = poll_s
        self._max_nodes_per_read = max_nodes_per_read
        self._reading_from = reading_from
        self._bad_all = bad_all
        self._overrun_logged_at = -math.inf

    async def read_limit(self, client: Client) -> int:
        """min(server MaxNodesPerRead (0 = no limit), max_nodes_per_read, 1000)."""
        limit = min(self._max_nodes_per_read, HARD_MAX_NODES_PER_READ)
        try:
            [dv] = await client.uaclient.read_attributes(
                [MAX_NODES_PER_READ_NODE], AttributeIds.Value
            )
        except (TimeoutError, UaError):
            return limit
        except TRANSPORT_ERRORS as exc:
            raise SessionLost(describe(exc)) from exc
        server_limit = dv.Value.Value if dv.Value is not None else None
        good = dv.StatusCode is None or dv.StatusCode.is_good()
        if good and isinstance(server_limit, int) and server_limit > 0:
            limit = min(limit, server_limit)
        return limit

    async def read_all(
        self,
        client: Client,
        nodes: Mapping[str, ua.NodeId],
        unresolved: Mapping[str, str],
        limit: int,
    ) -> list[Reading]:
        """One poll cycle: every node, in chunks of ``limit``, one Read request each.

        A chunk the server refuses (a service fault) gives bad readings for its sensors
        only; a transport failure raises :class:`SessionLost`.
        """
        sensor_ids = list(nodes)
        node_ids = list(nodes.values())
        readings: list[Reading] = []
        for start in range(0, len(node_ids), limit):
            chunk_ids = sensor_ids[start : start + limit]
            self._stats.requests += 1
            try:
                values = await client.uaclient.read_attributes(
                    node_ids[start : start + limit], AttributeIds.Value
                )
            except UaStatusCodeError as exc:
                self._stats.read_errors += 1
                reason = status_name(exc)
                now = time.time_ns()
                readings += [bad(sensor_id, reason, now, reason) for sensor_id in chunk_ids]
                continue
            except TRANSPORT_ERRORS as exc:
                raise SessionLost(describe(exc)) from exc
            now = time.time_ns()
            readings += [
                self._reading_from(sensor_id, dv, now)
                for sensor_id, dv in zip(chunk_ids, values, strict=False)
            ]
            if len(values) < len(chunk_ids):  # a server that answers short: never lose a sensor
                readings += [bad(s, "no result from server", now) for s in chunk_ids[len(values) :]]
        now = time.time_ns()
        readings += [bad(sensor_id, reason, now) for sensor_id, reason in unresolved.items()]
        return readings

    async def run(
        self,
        client: Client,
        nodes: Mapping[str, ua.NodeId],
        unresolved: Mapping[str, str],
        sink: ReadingSink,
    ) -> None:
        """Read every node once per poll interval until the session must be rebuilt."""
        limit = await self.read_limit(client)
        timeouts = 0
        next_cycle = time.monotonic()
        while True:
            if client.uaclient.state is not UaClientState.CONNECTED:
                raise SessionLost(f"client state {client.uaclient.state.value}")
            started = time.monotonic()
            try:
                readings = await self.read_all(client, nodes, unresolved, limit)
            except TimeoutError:
                timeouts += 1
                self._stats.read_errors += 1
                if timeouts >= MAX_CONSECUTIVE_TIMEOUTS:
                    raise SessionLost(f"{timeouts} read timeouts in a row") from None
                readings = self._bad_all("timeout")
            else:
                timeouts = 0
                self._stats.reads += 1
                self._stats.last_good_read_ns = time.time_ns()
            self._stats.last_latency_s = time.monotonic() - started
            await sink(readings)
            next_cycle = self._next_cycle(next_cycle)
            await asyncio.sleep(max(0.0, next_cycle - time.monotonic()))

    def _next_cycle(self, previous: float) -> float:
        """The next cycle's start; an overrun is counted and the schedule restarts from
        now instead of firing the missed cycles back to back."""
        upcoming = previous + self._poll_s
        now = time.monotonic()
        if now > upcoming:
            self._stats.overruns += 1
            # Logged at most once a minute: a poll that always overruns must not flood logs.
            if now - self._overrun_logged_at >= OVERRUN_LOG_INTERVAL_S:
                self._overrun_logged_at = now
                log.warning(
                    "OPC UA poll cycle overran its interval.",
                    extra={
                        "connection": self._name,
                        "interval_s": self._poll_s,
                        "cycle_s": self._stats.last_latency_s,
                        "overruns": self._stats.overruns,
                    },
                )
            return now
        return upcoming
