"""The HTTP servers (health, hub webhooks: one implementation) under abuse: thousands of
slow clients, a header line every few seconds, huge heads and bodies, arbitrary bytes.
The server answers or closes, never crashes, keeps its file descriptors and its log
bounded, stays responsive to a normal client, and never puts a secret on the wire."""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from edge_agent.common.health import HEALTH_LIMITS, HealthServer
from edge_agent.common.http import ACCEPT_BACKLOG, HttpServer
from edge_agent.hub.webhooks import WebhookHandler, WebhookServer
from edge_agent.redaction import register_secret
from tests.conftest import free_port
from tests.service.conftest import (
    AgentProcess,
    BackgroundLoop,
    maintainx_forwarding,
    site_document,
    write_site,
)

SECRET = "health-secret-" + "5e1f0c2b9a7d"
SLOW_CLIENTS = 2_000
SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: 1\r\n"  # never finished


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    from edge_agent.demo.plant import seed_demo_assets
    from edge_agent.simulators.maintainx import Emulator

    emu = Emulator(keys={"mx-abuse-key-0001": 1}, rate_limiting=False)
    emu.start()
    seed_demo_assets(emu)
    try:
        yield emu
    finally:
        emu.stop()


class _Source:
    """Readiness that quotes a secret, as a forwarder's last error might."""

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        return True, {"ready": True, "forwarder": {"last_error": f"401 for Bearer {SECRET}"}}

    def liveness(self) -> dict[str, Any]:
        return {"status": "ok"}


def _webhook_server() -> WebhookServer:
    handler = WebhookHandler(
        prefix="edge/v1",
        store=None,  # type: ignore[arg-type]  # every request here is refused before it
        publish=None,  # type: ignore[arg-type]
        secrets=lambda _site: ["whsec-abuse"],
        org_sites={},
        known_sites=frozenset({"site-a"}),
        max_body=1024,
        max_age_s=300.0,
    )
    return WebhookServer("127.0.0.1", 0, handler)


@pytest.fixture(scope="module", params=["health", "webhooks"])
def server(request: Any, background: BackgroundLoop) -> Iterator[HttpServer]:
    """Each of the project's HTTP endpoints, in a background loop."""
    register_secret(SECRET)
    owner: HealthServer | WebhookServer
    if request.param == "health":
        owner = HealthServer("127.0.0.1:0", _Source(), CollectorRegistry())
    else:
        owner = _webhook_server()
    background.call(owner.start())
    try:
        yield owner.server
    finally:
        background.call(owner.close())


def exchange(port: int, raw: bytes, timeout: float = 10.0) -> bytes:
    """Send ``raw``, half-close, read until the server closes (bounded by ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may have answered and closed already
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def normal_get(port: int, path: str = "/healthz") -> tuple[int, bytes]:
    """What an ordinary client (urllib) gets."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:80]
    return int(response.split(b" ", 2)[1])


def test_both_endpoints_stand_on_the_one_server() -> None:
    health = HealthServer("127.0.0.1:0", _Source(), CollectorRegistry())
    assert type(health.server) is HttpServer
    assert type(_webhook_server().server) is HttpServer


def test_a_header_line_every_so_often_is_cut_by_one_request_timeout(
    server: HttpServer,
) -> None:
    """Slowloris: each line alone is quick, the request as a whole is not. (On the health
    endpoint only: the webhooks' 10 s timeout is the same code, and twice the wait.)"""
    if server.name != "health":
        pytest.skip("same server, longer timeout")
    lines_sent = 0
    budget = server.limits.request_timeout_s
    pause = budget / 5  # the old per-line timeout never fired at this pace
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST /maintainx/webhooks/site-a HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        for lines_sent in range(1, 200):  # bounded: 40 request timeouts at most
            readable, _, _ = select.select([sock], [], [], pause)
            if readable:
                answer = sock.recv(4096)
                break
            sock.sendall(f"X-Line-{lines_sent}: still coming\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert lines_sent < 10  # cut after one request timeout, not one per line
    assert server.stats.dropped["timeout"] >= 1


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431),
        (
            b"POST /maintainx/webhooks/site-a HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 99999999\r\n\r\n",
            413,
        ),
        (
            b"POST /maintainx/webhooks/site-a HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"ffff\r\n" + b"x" * 70_000,
            413,
        ),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)), 400),  # TLS hello
    ],
    ids=["huge-header", "huge-target", "huge-length", "huge-chunked", "tls-hello"],
)
def test_huge_and_foreign_requests_are_refused(
    server: HttpServer, raw: bytes, expected: int
) -> None:
    assert status_of(exchange(server.port, raw)) == expected
    assert normal_get(server.port)[0] in (200, 405)  # webhooks: GET is not allowed


@settings(
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    raw=st.one_of(
        st.binary(max_size=3000),
        st.lists(
            st.sampled_from(
                [
                    b"GET ",
                    b"POST ",
                    b"/healthz",
                    b"/readyz",
                    b"/maintainx/webhooks/site-a",
                    b" HTTP/1.1",
                    b" HTTP/1.0",
                    b" HTTP/9.9",
                    b"\r\n",
                    b"\n",
                    b"\r",
                    b":",
                    b"Host: x",
                    b"Content-Length: ",
                    b"Content-Length: -1",
                    b"12",
                    b"\x00",
                    b"Transfer-Encoding: chunked",
                    b"0\r\n\r\n",
                    b"\xff\xfe",
                    b" ",
                    b"\t",
                    b"Expect: 100-continue",
                ]
            ),
            max_size=40,
        ).map(b"".join),
    )
)
def test_arbitrary_bytes_get_an_answer_or_a_close(server: HttpServer, raw: bytes) -> None:
    response = exchange(server.port, raw)
    if response:
        assert 200 <= status_of(response) < 600
        assert SECRET.encode() not in response
    # The server is still there for the next client, and still redacts.
    if server.name == "health":
        status, body = normal_get(server.port, "/readyz")
        assert status == 200 and SECRET.encode() not in body and b"Bearer ***" in body


def _fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.slow
def test_2000_slow_clients_cannot_starve_the_agent(
    plant: Any, emulator: Any, tmp_path: Path
) -> None:
    """The reproduction: slow clients used to hold ~1,100 connections and every file
    descriptor of a gateway with ``ulimit -n 1024``. Here the agent runs with 256."""
    health_port = free_port()
    document = site_document(
        modbus_port=plant.port,
        health_port=health_port,
        storage=tmp_path / "state",
        forwarding=maintainx_forwarding(emulator),
    )
    site = write_site(tmp_path / "site.yaml", document)
    agent = AgentProcess(site, tmp_path / "state", health_port, tmp_path / "agent.log")
    agent.env["MAINTAINX_API_KEY"] = "mx-abuse-key-0001"
    agent.launcher = [
        sys.executable,
        "-c",
        "import resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)); "
        "from edge_agent.cli import main; sys.exit(main(sys.argv[1:]))",
    ]
    agent.start()
    try:
        agent.wait_ready()
        assert agent.process is not None
        pid = agent.process.pid
        baseline_fds = _fd_count(pid)
        slow: list[socket.socket] = []
        most_fds = 0
        probes = 0
        deadline = time.monotonic() + 120  # a bound for the loop, not an assertion
        for opened in range(1, SLOW_CLIENTS + 1):
            assert time.monotonic() < deadline, "the attack loop ran out of time"
            sock = socket.create_connection(("127.0.0.1", health_port), timeout=10)
            sock.sendall(SLOW_HEAD)
            slow.append(sock)
            if opened % 10 == 0:
                most_fds = max(most_fds, _fd_count(pid))
            if opened % 100 == 0:
                # Our side: let go of what the server has closed (EOF or reset).
                readable, _, _ = select.select(slow, [], [], 0)
                for gone in readable:
                    gone.close()
                slow = [s for s in slow if s.fileno() != -1]
                status, body = normal_get(health_port, "/readyz")
                assert status == 200, body
                probes += 1
        ready = json.loads(normal_get(health_port, "/readyz")[1])
        assert ready["sources"]["plc1"]["connected"] is True
        evicted = agent.metric(
            "edge_agent_http_connections_dropped_total", server="health", reason="evicted"
        )
        for sock in slow:
            sock.close()
    finally:
        code = agent.stop() if agent.alive() else None
        agent.kill()
    assert code == 0
    assert probes == SLOW_CLIENTS // 100
    # Bounded: the connections served (the cap), those accepted in one go and about to be
    # refused or to evict an older one (the backlog), and a few the agent opens anyway.
    bound = baseline_fds + HEALTH_LIMITS.max_connections + ACCEPT_BACKLOG + 16
    assert most_fds <= bound, (most_fds, baseline_fds)
    assert evicted is not None and evicted >= SLOW_CLIENTS - HEALTH_LIMITS.max_connections
    lines = agent.logs().splitlines()
    limit_lines = [line for line in lines if "HTTP connection limit reached." in line]
    assert 1 <= len(limit_lines) <= 80, len(limit_lines)
    assert len(lines) < 300, len(lines)
