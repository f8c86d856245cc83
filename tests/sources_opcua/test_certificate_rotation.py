"""Issue 17 §4: after the client certificate and key change on disk, the next session uses
them, triggered by the file change itself or at once by SIGHUP (``reload_credentials``);
a host that does not resolve is named."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from edge_agent.config.models import Defaults
from edge_agent.readings import Quality
from edge_agent.simulators.opcua import SERVER_APPLICATION_URI, OpcUaSimulator, SimulatorSecurity
from edge_agent.sources.opcua.certs import generate_self_signed
from edge_agent.sources.opcua.source import OpcUaSource

from .conftest import Collector, connection, make_source, plant_sensors, running, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

CLIENT_URI = "urn:edge-agent:client"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rotation-pki")
    generate_self_signed(root / "server.pem", root / "server.key", SERVER_APPLICATION_URI)
    for name in ("first", "renewed", "stranger"):
        generate_self_signed(root / f"{name}.pem", root / f"{name}.key", CLIENT_URI)
    return root


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim(pki: Path) -> AsyncIterator[OpcUaSimulator]:
    """Trusts the first and the renewed client certificates, not the stranger."""
    simulator = OpcUaSimulator(
        security=SimulatorSecurity(
            certificate=pki / "server.pem",
            private_key=pki / "server.key",
            trusted_clients=[pki / "first.pem", pki / "renewed.pem"],
            policies=("Basic256Sha256_SignAndEncrypt",),
            allow_none=False,
        ),
    )
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()


def install(pki: Path, name: str, live: Path) -> None:
    """A renewal: key then certificate, each replaced by a rename."""
    live.mkdir(exist_ok=True)
    for suffix in ("key", "pem"):
        shutil.copyfile(pki / f"{name}.{suffix}", live / f".new.{suffix}")
        (live / f".new.{suffix}").replace(live / f"client.{suffix}")


def source_for(sim: OpcUaSimulator, pki: Path, files_check_s: float) -> OpcUaSource:
    conn = connection(
        sim.endpoint,
        security={
            "policy": "Basic256Sha256",
            "mode": "SignAndEncrypt",
            "certificate": "live/client.pem",
            "private_key": "live/client.key",
            "server_certificate": "server.pem",
            "application_uri": CLIENT_URI,
        },
    )
    return OpcUaSource("ua1", conn, plant_sensors(), Defaults(), pki, files_check_s=files_check_s)


def good(reading: object) -> bool:
    return getattr(reading, "quality", None) is Quality.GOOD


async def test_a_file_change_rebuilds_the_session_with_the_new_certificate(
    sim: OpcUaSimulator, pki: Path, tmp_path: Path
) -> None:
    live = pki / "live"
    install(pki, "first", live)
    source = source_for(sim, pki, files_check_s=0.1)
    sink = Collector()
    async with running(source, sink):
        await sink.wait_for(good)
        # The stranger's certificate: the server refuses it, proof the new file is used.
        install(pki, "stranger", live)
        await wait_until(lambda: source.certificate_rotations == 1)
        refused = await sink.wait_for(lambda r: "BadCertificateUntrusted" in (r.reason or ""))
        assert refused.quality is Quality.BAD
        # The renewed certificate the server trusts: readings are good again.
        install(pki, "renewed", live)
        mark = sink.mark()
        await sink.wait_for(good, since=mark)
        assert source.stats.connected


async def test_sighup_looks_at_once(sim: OpcUaSimulator, pki: Path) -> None:
    live = pki / "live"
    install(pki, "first", live)
    source = source_for(sim, pki, files_check_s=3600.0)  # only SIGHUP can trigger it
    sink = Collector()
    async with running(source, sink):
        await sink.wait_for(good)
        install(pki, "stranger", live)
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
