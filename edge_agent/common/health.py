"""``/healthz``, ``/readyz`` and ``/metrics`` over plain HTTP/1.1 on ``health.listen``, for
the agent and the hub alike (each answers :class:`HealthSource`).

Three GET endpoints on the project's one bounded HTTP server
(:mod:`edge_agent.common.http`): a bounded number of connections, one timeout for a whole
request, no request body. It listens on loopback by default; the site file may choose
another address. What the server refused is counted in
``edge_agent_http_connections_dropped_total{server="health",reason}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any, Final, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edge_agent.common.http import HttpServer, Limits, ListenError, Request, Response
from edge_agent.common.listen import parse_listen
from edge_agent.errors import EdgeAgentError

log = logging.getLogger(__name__)

HEALTH_LIMITS: Final = Limits(
    # A prober or two and a Prometheus scrape at a time; room to spare, far below any
    # file-descriptor limit.
    max_connections=32,
    request_timeout_s=5.0,
    max_head_bytes=4 * 1024,
    max_body_bytes=0,
    handler_timeout_s=10.0,
)


class HealthError(EdgeAgentError):
    """The health server could not start (bad address, port taken)."""


class HealthSource(Protocol):
    """What the server asks the running agent."""

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, details); the details name every reason when not ready."""
        ...

    def liveness(self) -> dict[str, Any]:
        """What ``/healthz`` shows (the process runs; last reload and its errors);
        ``"alive": False`` makes it HTTP 503."""
        ...


class HttpServerCollector(Collector):
    """The HTTP servers' own counters, read at scrape time."""

    def __init__(self, servers: list[HttpServer]) -> None:
        self._servers = servers

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        dropped = CounterMetricFamily(
            "edge_agent_http_connections_dropped",
            "HTTP connections closed or refused by the server's bounds, by reason.",
            labels=["server", "reason"],
        )
        open_now = GaugeMetricFamily(
            "edge_agent_http_connections_open",
            "HTTP connections open now.",
            labels=["server"],
        )
        for server in self._servers:
            for reason, count in sorted(server.stats.dropped.items()):
                dropped.add_metric([server.name, reason], count)
            open_now.add_metric([server.name], server.open_connections)
        yield dropped
        yield open_now


class HealthServer:
    """Serves the three endpoints for one agent until :meth:`close`."""

    def __init__(self, listen: str, source: HealthSource, registry: CollectorRegistry) -> None:
        try:
            self._host, port = parse_listen(listen)
        except ValueError as exc:
            raise HealthError(f"health.listen {exc}") from exc
        self._source = source
        self._registry = registry
        self.server = HttpServer(
            self._host, port, self._respond, name="health", limits=HEALTH_LIMITS
        )
        registry.register(HttpServerCollector([self.server]))

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return self.server.port

    @property
    def host(self) -> str:
        return self._host

    async def start(self) -> None:
        try:
            await self.server.start()
        except ListenError as exc:
            raise HealthError(
                f"cannot listen on {self._host}:{self.server.port} for health: {exc.strerror}"
            ) from exc
        log.info("Health endpoint listening.", extra={"host": self._host, "port": self.port})

    async def close(self) -> None:
        await self.server.close()

    async def _respond(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"only GET\n")
        target = request.path
        if target == "/healthz":
            liveness = self._source.liveness()
            # A task of the agent has ended: the process is about to exit; say so.
            status = 503 if liveness.get("alive") is False else 200
            return Response(status, _json(liveness), "application/json")
        if target == "/readyz":
            ready, details = self._source.readiness()
            return Response(200 if ready else 503, _json(details), "application/json")
        if target == "/metrics":
            # Collectors read live state and are quick: no need to leave the loop.
            return Response(200, generate_latest(self._registry), CONTENT_TYPE_LATEST)
        return Response(404, b"not found: try /healthz, /readyz or /metrics\n")


def _json(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, default=str, sort_keys=True) + "\n").encode()
