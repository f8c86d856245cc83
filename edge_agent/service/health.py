"""``/healthz``, ``/readyz`` and ``/metrics`` over plain HTTP/1.1 on ``health.listen``.

A deliberately small server on asyncio streams: three GET endpoints, one request per
connection, no dependency beyond prometheus-client for the text format. It listens on
loopback by default; the site file may choose another address.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

_MAX_REQUEST_LINE = 4096
_READ_TIMEOUT_S = 5.0


class HealthError(Exception):
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


def parse_listen(listen: str) -> tuple[str, int]:
    """``127.0.0.1:9108`` or ``[::1]:9108`` → (host, port)."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit():
        raise HealthError(f"health.listen {listen!r} is not HOST:PORT")
    host = host.strip("[]") or "127.0.0.1"
    port = int(port_text)
    if port > 65535:
        raise HealthError(f"health.listen {listen!r}: port out of range")
    return host, port


class HealthServer:
    """Serves the three endpoints for one agent until :meth:`close`."""

    def __init__(self, listen: str, source: HealthSource, registry: CollectorRegistry) -> None:
        self._host, self._port = parse_listen(listen)
        self._source = source
        self._registry = registry
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def host(self) -> str:
        return self._host

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._handle, self._host, self._port)
        except OSError as exc:
            raise HealthError(
                f"cannot listen on {self._host}:{self._port} for health: {exc.strerror}"
            ) from exc
        log.info("Health endpoint listening.", extra={"host": self._host, "port": self.port})

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, content_type, body = await self._respond(reader)
        except (TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            status, content_type, body = 400, "text/plain", b"bad request\n"
        except ConnectionError:
            writer.close()
            return
        except Exception:
            log.exception("Health request failed.")
            status, content_type, body = 500, "text/plain", b"internal error\n"
        reason = {
            200: "OK",
            400: "Bad Request",
            404: "Not Found",
            405: "Method Not Allowed",
            500: "Internal Server Error",
        }
        head = (
            f"HTTP/1.1 {status} {reason.get(status, 'Service Unavailable')}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\n"
            "Connection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            writer.write(head.encode("ascii") + body)
            await writer.drain()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes]:
        async with asyncio.timeout(_READ_TIMEOUT_S):
            line = await reader.readline()
        if len(line) > _MAX_REQUEST_LINE:
            return 400, "text/plain", b"request line too long\n"
        parts = line.decode("latin-1").split()
        if len(parts) < 2:
            return 400, "text/plain", b"bad request\n"
        # Skip the headers: nothing here depends on them.
        for _ in range(100):
            async with asyncio.timeout(_READ_TIMEOUT_S):
                header = await reader.readline()
            if header in (b"\r\n", b"\n", b""):
                break
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"only GET\n"
        if target == "/healthz":
            liveness = self._source.liveness()
            # A task of the agent has ended: the process is about to exit; say so.
            status = 503 if liveness.get("alive") is False else 200
            return status, "application/json", _json(liveness)
        if target == "/readyz":
            ready, details = self._source.readiness()
            return (200 if ready else 503), "application/json", _json(details)
        if target == "/metrics":
            # Collectors read live state and are quick: no need to leave the loop.
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        return 404, "text/plain", b"not found: try /healthz, /readyz or /metrics\n"


def _json(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, default=str, sort_keys=True) + "\n").encode()
