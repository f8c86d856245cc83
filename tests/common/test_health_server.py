"""The health server's HTTP handling over a real socket: paths, methods, bad requests."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from edge_agent.common.health import HealthError, HealthServer
from edge_agent.common.listen import parse_listen


class _Source:
    ready = True

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        return self.ready, {"ready": self.ready, "reasons": [] if self.ready else ["down"]}

    def liveness(self) -> dict[str, Any]:
        return {"status": "ok"}


async def _request(port: int, raw: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    status = int(response.split(b" ", 2)[1])
    return status, response.split(b"\r\n\r\n", 1)[1]


async def test_endpoints_methods_and_bad_requests() -> None:
    registry = CollectorRegistry()
    Counter("edge_agent_test_things", "things", registry=registry).inc()
    source = _Source()
    server = HealthServer("127.0.0.1:0", source, registry)
    await server.start()
    try:
        port = server.port
        # HTTP/1.0 needs no Host (the shortest probe there is); HTTP/1.1 must send one.
        assert await _request(port, b"GET /healthz HTTP/1.0\r\n\r\n") == (
            200,
            b'{"status": "ok"}\n',
        )
        status, body = await _request(port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200
        source.ready = False
        status, body = await _request(port, b"GET /readyz?verbose=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 503 and b'"down"' in body
        status, body = await _request(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200 and b"edge_agent_test_things_total 1.0" in body
        assert (await _request(port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"))[0] == 404
        assert (await _request(port, b"POST /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))[0] == 405
        assert (await _request(port, b"\r\n"))[0] == 400
        assert (await _request(port, b"GET /healthz HTTP/1.1\r\n\r\n"))[0] == 400  # no Host
        assert (await _request(port, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n"))[0] == 400
        assert (await _request(port, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"))[0] == 431
    finally:
        await server.close()


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:9108") == ("127.0.0.1", 9108)
    assert parse_listen("[::1]:9108") == ("::1", 9108)
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    # No host binds every interface: that must be written out, not implied.
    bad_addresses = ("localhost", "127.0.0.1:http", "127.0.0.1:70000", ":9108", "[]:9108")
    for bad in (*bad_addresses, "127.0.0.1:\u0669"):
        with pytest.raises(ValueError):
            parse_listen(bad)
    with pytest.raises(HealthError, match="health.listen"):
        HealthServer(":9108", _Source(), CollectorRegistry())
