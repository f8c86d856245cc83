"""Every refusal names its cause and its fix (issue 19), against a real secured server:
SignAndEncrypt only, no anonymous access, a trust list of client certificates."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import io
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from edge_agent.common.logs import set_log_level
from edge_agent.config.models import OpcUa
from edge_agent.readings import Quality
from edge_agent.simulators.opcua import SERVER_APPLICATION_URI, OpcUaSimulator, SimulatorSecurity
from edge_agent.sources.opcua.certs import (
    build_certificate,
    generate_self_signed,
    key_pem,
    load_certificate_der,
    new_key,
    thumbprint,
)
from edge_agent.sources.opcua.errors import OpcUaRefused

from .conftest import Collector, connection, make_source, running, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

CLIENT_URI = "urn:edge-agent:client"
USER, PASSWORD = "operator", "pw-4-tests"
WRONG_PASSWORD = "not-the-password"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("refusals-pki")
    generate_self_signed(root / "server.pem", root / "server.key", SERVER_APPLICATION_URI)
    generate_self_signed(root / "rogue.pem", root / "rogue.key", SERVER_APPLICATION_URI)
    for name in ("client", "stranger"):
        generate_self_signed(root / f"{name}.pem", root / f"{name}.key", CLIENT_URI)
    now = dt.datetime.now(dt.UTC)
    for name, made_at in (
        ("expired", now - dt.timedelta(days=40)),
        ("future", now + dt.timedelta(days=3)),
    ):
        key = new_key()
        cert = build_certificate(
            key, CLIENT_URI, common_name=name, hostnames=("localhost",), days=10, now=made_at
        )
        (root / f"{name}.pem").write_bytes(cert.public_bytes(_pem()))
        (root / f"{name}.key").write_bytes(key_pem(key))
    (root / "secrets").mkdir()
    (root / "secrets" / "ua.pw").write_text(PASSWORD + "\n")
    (root / "secrets" / "wrong.pw").write_text(WRONG_PASSWORD + "\n")
    return root


def _pem() -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.PEM


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim(pki: Path) -> AsyncIterator[OpcUaSimulator]:
    simulator = OpcUaSimulator(
        security=SimulatorSecurity(
            certificate=pki / "server.pem",
            private_key=pki / "server.key",
            # The trust list also holds the expired and future certificates: only our own
            # local check can refuse them.
            trusted_clients=[pki / "client.pem", pki / "expired.pem", pki / "future.pem"],
            policies=("Basic256Sha256_SignAndEncrypt", "Aes256Sha256RsaPss_SignAndEncrypt"),
        ),
        users={USER: PASSWORD},
    )
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()


@dataclass
class Relay:
    """A loopback relay in front of the server that closes the connection when a client
    opens a secure channel, as node-opcua does with a client certificate it does not trust
    (asyncua then fails on the cut-short error message: LIBRARIES.md)."""

    port: int

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/edge-agent/demo/"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def relay(sim: OpcUaSimulator) -> AsyncIterator[Relay]:
    import struct

    tasks: set[asyncio.Task[Any]] = set()

    async def pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: asyncio.StreamWriter
    ) -> None:
        for _ in range(10_000):
            data = await reader.read(65536)
            if not data:
                break
            if writer is not client and data.startswith(b"OPN") and b"#None" not in data:
                # An error message whose reason string is cut short, then the close.
                client.write(b"ERRF" + struct.pack("<IIi", 16, 0x801A0000, 40))
                await client.drain()
                break
            writer.write(data)
            await writer.drain()
        client.close()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", sim.port)
        both = asyncio.gather(
            pump(reader, up_writer, writer), pump(up_reader, writer, writer), return_exceptions=True
        )
        task = asyncio.ensure_future(both)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield Relay(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def secure(
    endpoint: str,
    *,
    policy: str = "Basic256Sha256",
    mode: str = "SignAndEncrypt",
    certificate: str = "client",
    server_certificate: str = "server.pem",
    password: str | None = "file:secrets/ua.pw",
) -> OpcUa:
    extra: dict[str, Any] = {"username": USER, "password": password} if password else {}
    return connection(
        endpoint,
        security={
            "policy": policy,
            "mode": mode,
            "certificate": f"{certificate}.pem",
            "private_key": f"{certificate}.key",
            "server_certificate": server_certificate,
            "application_uri": CLIENT_URI,
        },
        **extra,
    )


def fingerprint(pki: Path, name: str) -> str:
    return thumbprint(load_certificate_der(pki / f"{name}.pem"))


async def assert_refused(
    conn: OpcUa, pki: Path, cause: str, caplog: pytest.LogCaptureFixture
) -> str:
    """``read`` gives the reason; the running source keeps the cause for /readyz and the
    metric and logs it once however many attempts fail. Returns the reason."""
    readings = await make_source(conn, base_dir=pki).read_once()
    assert all(r.quality is Quality.BAD for r in readings), readings
    reason = readings[0].reason or ""
    assert "AssertionError" not in reason
    assert PASSWORD not in reason and WRONG_PASSWORD not in reason

    source = make_source(conn, base_dir=pki)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edge_agent.sources.opcua.source"):
        async with running(source, Collector()):
            await wait_until(lambda: source.stats.connect_attempts >= 3)
            assert source.stats.refused == cause
            assert not source.stats.connected
            assert source.stats.last_error == reason
    refusals = [r for r in caplog.records if r.getMessage() == "OPC UA connection refused."]
    assert [(r.cause, r.reason) for r in refusals] == [(cause, reason)]  # type: ignore[attr-defined]
    return reason


async def test_our_certificate_not_trusted(
    sim: OpcUaSimulator, pki: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reason = await assert_refused(
        secure(sim.endpoint, certificate="stranger"), pki, "client_certificate_untrusted", caplog
    )
    assert reason == (
        "the server does not trust our certificate stranger.pem (SHA-256 "
        f"{fingerprint(pki, 'stranger')}; BadCertificateUntrusted): trust it on the server; "
        "a new client certificate usually waits in its rejected list"
    )
    assert load_certificate_der(pki / "stranger.pem") in sim.rejected_clients


async def test_a_secure_channel_closed_in_the_handshake_is_our_certificate_not_trusted(
    relay: Relay, pki: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = make_source(secure(relay.endpoint), base_dir=pki)
    with pytest.raises(OpcUaRefused) as refused:
        await source._open_session()
    # What asyncua raised, translated at the boundary: after NotEnoughData on the cut-short
    # error, asyncua 2.1 raises ConnectionError here (AssertionError in other timings).
    assert isinstance(refused.value.__cause__, ConnectionError | AssertionError)
    reason = await assert_refused(
        secure(relay.endpoint), pki, "client_certificate_untrusted", caplog
    )
    assert reason == (
        "the server does not trust our certificate client.pem (SHA-256 "
        f"{fingerprint(pki, 'client')}; it closed the secure channel during the handshake): "
        "trust it on the server; a new client certificate usually waits in its rejected list"
    )


async def test_no_security_against_a_secure_only_server_lists_what_it_offers(
    sim: OpcUaSimulator, pki: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conn = connection(sim.endpoint, username=USER, password="file:secrets/ua.pw")
    reason = await assert_refused(conn, pki, "policy_not_offered", caplog)
    assert reason == (
        "the server offers no endpoint with security None/None; it offers "
        "Basic256Sha256/SignAndEncrypt (users: UserName), "
        "Aes256_Sha256_RsaPss/SignAndEncrypt (users: UserName): set the connection's security "
        "policy and mode to one of these"
    )


async def test_a_policy_the_server_does_not_offer(
    sim: OpcUaSimulator, pki: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conn = secure(sim.endpoint, policy="Aes128_Sha256_RsaOaep")
    reason = await assert_refused(conn, pki, "policy_not_offered", caplog)
    assert reason.startswith(
        "the server offers no endpoint with security Aes128_Sha256_RsaOaep/SignAndEncrypt; "
        "it offers Basic256Sha256/SignAndEncrypt (users: UserName)"
    )


async def test_wrong_password(
    sim: OpcUaSimulator, pki: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conn = secure(sim.endpoint, password="file:secrets/wrong.pw")
    reason = await assert_refused(conn, pki, "user_refused", caplog)
    assert reason == (
        "the server refused the user name 'operator' or its password (BadUserAccessDenied): "
        "check both"
    )


async def test_anonymous_refused(
    sim: OpcUaSimulator, pki: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reason = await assert_refused(
        secure(sim.endpoint, password=None), pki, "anonymous_refused", caplog
    )
    assert reason == (
        "the server refused anonymous access (BadIdentityTokenRejected): it needs a user "
        "name; set username and password on this connection"
    )


async def test_our_certificate_expired_is_checked_before_connecting(
    sim: OpcUaSimulator, pki: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reason = await assert_refused(
        secure(sim.endpoint, certificate="expired"), pki, "client_certificate_expired", caplog
    )
    assert reason.startswith("our certificate expired.pem expired on ")
    assert "(valid " in reason and "edge-agent certificate SITE CONNECTION --renew" in reason


async def test_our_certificate_not_yet_valid(
    sim: OpcUaSimulator, pki: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reason = await assert_refused(
        secure(sim.endpoint, certificate="future"),
        pki,
        "client_certificate_not_yet_valid",
        caplog,
    )
    assert reason.startswith("our certificate future.pem is not valid before ")
    assert "check this machine's clock" in reason


async def test_the_server_certificate_not_the_pinned_one(
    sim: OpcUaSimulator, pki: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conn = secure(sim.endpoint, server_certificate="rogue.pem")
    reason = await assert_refused(conn, pki, "server_certificate_not_pinned", caplog)
    assert fingerprint(pki, "rogue") in reason and fingerprint(pki, "server") in reason


async def test_the_service_log_has_the_refusal_once_and_no_asyncua_warning_per_attempt(
    sim: OpcUaSimulator, pki: Path, caplog: pytest.LogCaptureFixture
) -> None:
    quiet = ("asyncua", "asyncua.client.ua_client")
    levels = {name: logging.getLogger(name).level for name in quiet}
    source = make_source(secure(sim.endpoint, certificate="stranger"), base_dir=pki)
    try:
        with caplog.at_level(logging.INFO):
            set_log_level("info")  # as the service sets it
            async with running(source, Collector()):
                await wait_until(lambda: source.stats.connect_attempts >= 3)
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    # asyncua's client warns of each service fault it raises (the server's own log is its own).
    assert [r.getMessage() for r in warnings if r.name.startswith("asyncua.client")] == []
    refused = [r for r in warnings if r.getMessage() == "OPC UA connection refused."]
    assert len(refused) == 1


async def test_the_cause_clears_once_connected(sim: OpcUaSimulator, pki: Path) -> None:
    source = make_source(secure(sim.endpoint), base_dir=pki)
    source.stats.refused = "user_refused"  # as left by an earlier refusal
    sink = Collector()
    async with running(source, sink):
        await sink.wait_for(lambda r: r.quality is Quality.GOOD)
        assert source.stats.refused is None


async def test_cancelling_a_source_that_is_refused_always_stops_it(
    sim: OpcUaSimulator, pki: Path
) -> None:
    """A refusal of an unsecured client comes back in milliseconds, so a cancellation often
    lands just as a connect fails; Python 3.11's ``wait_for`` then raised the connect's
    error instead, and ``run`` went on for ever (22 of 200 cancellations were lost)."""
    conn = connection(
        sim.endpoint,
        username=USER,
        password="file:secrets/ua.pw",
        backoff={"initial": "1ms", "max": "2ms"},
    )
    rng = random.Random(19)
    for _ in range(100):
        task = asyncio.create_task(make_source(conn, base_dir=pki).run(Collector()))
        await asyncio.sleep(rng.uniform(0.0, 0.03))
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        assert done, "the source went on after it was cancelled"


@pytest.mark.parametrize(
    ("certificate", "password", "says"),
    [
        (
            "stranger",
            "file:secrets/ua.pw",
            "the server does not trust our certificate stranger.pem",
        ),
        ("client", "file:secrets/wrong.pw", "the server refused the user name 'operator'"),
        ("expired", "file:secrets/ua.pw", "our certificate expired.pem expired on "),
    ],
)
async def test_discover_says_the_same_refusals(
    sim: OpcUaSimulator, pki: Path, certificate: str, password: str, says: str
) -> None:
    """`edge-agent discover opcua --site --connection` takes the connection's security
    options, and a refusal reads as it does in `read`."""
    from edge_agent.commands import discover

    conn = secure(sim.endpoint, certificate=certificate, password=password)
    options = argparse.Namespace(root="i=85", depth=1, filter=[], standard_nodes=False)
    with pytest.raises(OpcUaRefused) as refused:
        await discover._discover(conn, pki, options, io.StringIO())
    assert str(refused.value).startswith(says)
    assert discover._reason(refused.value).startswith(says)
