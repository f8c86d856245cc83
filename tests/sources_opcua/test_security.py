"""Security against a real asyncua server: policies, trust in both directions, users."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from asyncua.common.utils import ServiceError
from asyncua.ua.status_codes import StatusCodes
from cryptography import x509

from edge_agent.config.models import Defaults, OpcUa
from edge_agent.readings import Quality
from edge_agent.simulators.opcua import SERVER_APPLICATION_URI, OpcUaSimulator, SimulatorSecurity
from edge_agent.sources.opcua.certs import generate_self_signed, load_certificate_der
from edge_agent.sources.opcua.security import TrustedServerCertificate
from edge_agent.sources.opcua.source import OpcUaSource

from .conftest import (
    PLANT,
    Collector,
    connection,
    make_source,
    plant_sensors,
    running,
    wait_until,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

CLIENT_URI = "urn:edge-agent:client"
USER, PASSWORD = "operator", "pw-4-tests"


@dataclass
class Pki:
    root: Path

    def path(self, name: str) -> Path:
        return self.root / name


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    generate_self_signed(root / "server.pem", root / "server.key", SERVER_APPLICATION_URI)
    generate_self_signed(root / "rogue.pem", root / "rogue.key", SERVER_APPLICATION_URI)
    generate_self_signed(root / "client.pem", root / "client.key", CLIENT_URI)
    generate_self_signed(root / "stranger.pem", root / "stranger.key", CLIENT_URI)
    generate_self_signed(root / "other-uri.pem", root / "other-uri.key", "urn:somebody:else")
    (root / "secrets").mkdir()
    (root / "secrets" / "ua.pw").write_text(PASSWORD + "\n")
    (root / "secrets" / "wrong.pw").write_text("not-the-password\n")
    return Pki(root)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim(pki: Pki) -> AsyncIterator[OpcUaSimulator]:
    simulator = OpcUaSimulator(
        security=SimulatorSecurity(
            certificate=pki.path("server.pem"),
            private_key=pki.path("server.key"),
            trusted_clients=[pki.path("client.pem")],
            policies=(
                "Basic256Sha256_Sign",
                "Basic256Sha256_SignAndEncrypt",
                "Aes128Sha256RsaOaep_SignAndEncrypt",
                "Aes256Sha256RsaPss_SignAndEncrypt",
            ),
            allow_none=True,
        ),
        users={USER: PASSWORD},
    )
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()


def secure(
    sim: OpcUaSimulator,
    policy: str = "Basic256Sha256",
    mode: str = "SignAndEncrypt",
    *,
    certificate: str = "client.pem",
    private_key: str = "client.key",
    server_certificate: str = "server.pem",
    password: str = "file:secrets/ua.pw",
) -> object:
    # Relative paths: resolved from base_dir (the site file's folder).
    return connection(
        sim.endpoint,
        security={
            "policy": policy,
            "mode": mode,
            "certificate": certificate,
            "private_key": private_key,
            "server_certificate": server_certificate,
            "application_uri": CLIENT_URI,
        },
        username=USER,
        password=password,
    )


@pytest.mark.parametrize(
    ("policy", "mode"),
    [
        ("Basic256Sha256", "SignAndEncrypt"),
        ("Basic256Sha256", "Sign"),
        ("Aes128_Sha256_RsaOaep", "SignAndEncrypt"),
        ("Aes256_Sha256_RsaPss", "SignAndEncrypt"),
    ],
)
async def test_secure_channel_with_generated_certificates(
    sim: OpcUaSimulator, pki: Pki, policy: str, mode: str
) -> None:
    source = make_source(secure(sim, policy, mode), base_dir=pki.root)
    readings = await source.read_once()
    assert {r.sensor_id for r in readings} == set(PLANT)
    assert all(r.quality is Quality.GOOD for r in readings), readings


async def test_untrusted_server_certificate_is_refused(sim: OpcUaSimulator, pki: Pki) -> None:
    source = make_source(secure(sim, server_certificate="rogue.pem"), base_dir=pki.root)
    readings = await source.read_once()
    assert all(r.quality is Quality.BAD for r in readings)
    reason = readings[0].reason or ""
    assert "server certificate is not trusted" in reason
    rogue = load_certificate_der(pki.path("rogue.pem"))
    assert TrustedServerCertificate(rogue).thumbprint in reason


async def test_untrusted_server_is_refused_by_the_running_source(
    sim: OpcUaSimulator, pki: Pki
) -> None:
    source = make_source(secure(sim, server_certificate="rogue.pem"), base_dir=pki.root)
    sink = Collector()
    async with running(source, sink):
        refused = await sink.wait_for(lambda r: "not trusted" in (r.reason or ""))
    assert refused.quality is Quality.BAD
    assert not source.stats.connected
    assert "not trusted" in (source.stats.last_error or "")


async def test_session_certificate_check_refuses_any_other_certificate(pki: Pki) -> None:
    # The second line of defence (asyncua's certificate_validator hook), on its own.
    trusted = TrustedServerCertificate(load_certificate_der(pki.path("server.pem")))
    rogue = x509.load_pem_x509_certificate(pki.path("rogue.pem").read_bytes())
    good = x509.load_pem_x509_certificate(pki.path("server.pem").read_bytes())
    await trusted.validate(good, None)  # type: ignore[arg-type]
    with pytest.raises(ServiceError) as refused:
        await trusted.validate(rogue, None)  # type: ignore[arg-type]
    assert refused.value.code == StatusCodes.BadCertificateUntrusted
    assert trusted.rejected is not None and "not trusted" in trusted.rejected


async def test_server_refuses_an_untrusted_client(sim: OpcUaSimulator, pki: Pki) -> None:
    source = make_source(
        secure(sim, certificate="stranger.pem", private_key="stranger.key"), base_dir=pki.root
    )
    readings = await source.read_once()
    assert all(r.quality is Quality.BAD for r in readings)
    reason = readings[0].reason or ""
    assert reason.startswith("the server does not trust our certificate stranger.pem (SHA-256 ")
    assert "BadCertificateUntrusted" in reason


async def test_client_certificate_must_carry_the_application_uri(pki: Pki) -> None:
    source = make_source(
        connection(
            "opc.tcp://127.0.0.1:1/x/",
            security={
                "policy": "Basic256Sha256",
                "mode": "Sign",
                "certificate": "other-uri.pem",
                "private_key": "other-uri.key",
                "server_certificate": "server.pem",
                "application_uri": CLIENT_URI,
            },
        ),
        base_dir=pki.root,
    )
    readings = await source.read_once()
    assert CLIENT_URI in (readings[0].reason or "")
    assert readings[0].quality is Quality.BAD
    # The application_uri changed after the certificate was made: say how to match them.
    assert "edge-agent certificate SITE CONNECTION --renew" in (readings[0].reason or "")


async def test_username_and_password_from_secrets(
    sim: OpcUaSimulator, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_TEST_UA_PASSWORD", PASSWORD)
    for password in ("file:secrets/ua.pw", "${EDGE_TEST_UA_PASSWORD}"):
        plain = connection(sim.endpoint, username=USER, password=password)
        readings = await make_source(plain, base_dir=pki.root).read_once()
        assert all(r.quality is Quality.GOOD for r in readings), readings

    wrong = connection(sim.endpoint, username=USER, password="file:secrets/wrong.pw")
    readings = await make_source(wrong, base_dir=pki.root).read_once()
    assert all(r.quality is Quality.BAD for r in readings)
    assert readings[0].reason == (
        "the server refused the user name 'operator' or its password (BadUserAccessDenied): "
        "check both"
    )
    assert "not-the-password" not in (readings[0].reason or "")

    missing = connection(sim.endpoint, username=USER, password="${EDGE_TEST_UNSET_VARIABLE}")
    readings = await make_source(missing, base_dir=pki.root).read_once()
    assert "EDGE_TEST_UNSET_VARIABLE" in (readings[0].reason or "")


def install(pki: Pki, name: str) -> None:
    """A certificate renewal into ``live/``: key then certificate, each replaced by a rename."""
    live = pki.path("live")
    live.mkdir(exist_ok=True)
    for suffix in ("key", "pem"):
        shutil.copyfile(pki.path(f"{name}.{suffix}"), live / f".new.{suffix}")
        (live / f".new.{suffix}").replace(live / f"client.{suffix}")


def rotating_source(sim: OpcUaSimulator, pki: Pki, files_check_s: float) -> OpcUaSource:
    conn = secure(sim, certificate="live/client.pem", private_key="live/client.key")
    assert isinstance(conn, OpcUa)
    return OpcUaSource(
        "ua1", conn, plant_sensors(), Defaults(), pki.root, files_check_s=files_check_s
    )


async def test_a_certificate_file_change_rebuilds_the_session_with_the_new_files(
    sim: OpcUaSimulator, pki: Pki
) -> None:
    """Issue 17 §4: the next session uses the rotated certificate, no SIGHUP needed."""
    install(pki, "client")
    source = rotating_source(sim, pki, files_check_s=0.1)
    sink = Collector()
    async with running(source, sink):
        await sink.wait_for(lambda r: r.quality is Quality.GOOD)
        # A certificate the server does not trust: refused, proof the new file is used.
        install(pki, "stranger")
        await wait_until(lambda: source.certificate_rotations == 1)
        await sink.wait_for(lambda r: "BadCertificateUntrusted" in (r.reason or ""))
        # The trusted one back in place: the next attempt (no session to rebuild) uses
        # it, and readings are good again.
        install(pki, "client")
        await sink.wait_for(lambda r: r.quality is Quality.GOOD, since=sink.mark())
        assert source.stats.connected


async def test_sighup_looks_at_the_certificate_files_at_once(sim: OpcUaSimulator, pki: Pki) -> None:
    install(pki, "client")
    source = rotating_source(sim, pki, files_check_s=3600.0)  # only SIGHUP is quick enough
    sink = Collector()
    async with running(source, sink):
        await sink.wait_for(lambda r: r.quality is Quality.GOOD)
        install(pki, "stranger")
        source.reload_credentials()
        await wait_until(lambda: source.certificate_rotations == 1)
        await sink.wait_for(lambda r: "BadCertificateUntrusted" in (r.reason or ""))


async def test_an_unresolvable_host_is_named() -> None:
    source = make_source(connection("opc.tcp://plc.invalid:4840/"))
    readings = await source.read_once()
    assert readings[0].quality is Quality.BAD
    assert (readings[0].reason or "").startswith(
        "the host 'plc.invalid' of opc.tcp://plc.invalid:4840/ does not resolve"
    ), readings[0].reason
