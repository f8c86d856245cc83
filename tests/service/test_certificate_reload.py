"""Issue 17 §4 through the agent process: SIGHUP makes an OPC UA connection look at its
certificate files at once and reconnect with the rotated ones."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.simulators.opcua import SERVER_APPLICATION_URI, OpcUaSimulator, SimulatorSecurity
from edge_agent.sources.opcua.certs import generate_self_signed

from .conftest import API_KEY, AgentProcess, BackgroundLoop, direct_site, wait_until

CLIENT_URI = "urn:edge-agent:client"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sighup-pki")
    generate_self_signed(root / "server.pem", root / "server.key", SERVER_APPLICATION_URI)
    for name in ("first", "stranger"):
        generate_self_signed(root / f"{name}.pem", root / f"{name}.key", CLIENT_URI)
    return root


@pytest.fixture(scope="module")
def secure_server(background: BackgroundLoop, pki: Path) -> Iterator[OpcUaSimulator]:
    simulator = OpcUaSimulator(
        security=SimulatorSecurity(
            certificate=pki / "server.pem",
            private_key=pki / "server.key",
            trusted_clients=[pki / "first.pem"],
            policies=("Basic256Sha256_SignAndEncrypt",),
            allow_none=False,
        ),
    )
    background.call(simulator.start())
    try:
        yield simulator
    finally:
        background.call(simulator.close())


def install(pki: Path, name: str, live: Path) -> None:
    live.mkdir(exist_ok=True)
    for suffix in ("key", "pem"):
        shutil.copyfile(pki / f"{name}.{suffix}", live / f".new.{suffix}")
        (live / f".new.{suffix}").replace(live / f"client.{suffix}")


def test_sighup_reconnects_opcua_with_the_rotated_certificate(
    plant: Any,
    emulator: Any,
    secure_server: OpcUaSimulator,
    pki: Path,
    health_port: int,
    tmp_path: Path,
    make_agent: Callable[[dict[str, Any]], AgentProcess],
) -> None:
    live = tmp_path / "live"
    install(pki, "first", live)
    document = direct_site(plant, emulator, health_port, tmp_path)
    document["connections"]["ua1"] = {
        "protocol": "opcua",
        "endpoint": secure_server.endpoint,
        "backoff": {"initial": "100ms", "max": "500ms"},
        "security": {
            "policy": "Basic256Sha256",
            "mode": "SignAndEncrypt",
            "certificate": str(live / "client.pem"),
            "private_key": str(live / "client.key"),
            "server_certificate": str(pki / "server.pem"),
            "application_uri": CLIENT_URI,
        },
    }
    document["sensors"]["p101_bearing_temp"] = {
        "connection": "ua1",
        "node": "ns=2;s=Line1.P101.BearingTemp",
    }
    agent = make_agent(document)
    agent.start({"MAINTAINX_API_KEY": API_KEY})

    def source(name: str) -> dict[str, Any]:
        _status, body = agent.json("/readyz")
        found: dict[str, Any] = body.get("sources", {}).get(name, {})
        return found

    wait_until(lambda: source("ua1").get("connected"), what="secure session open")
    install(pki, "stranger", live)  # the default look is 30 s away: only SIGHUP is quick
    agent.signal(signal.SIGHUP)
    wait_until(
        lambda: "BadCertificateUntrusted" in str(source("ua1").get("last_error")),
        timeout=15,
        what="the server refusing the rotated certificate",
    )
    assert "Certificate files changed; reconnecting with them." in agent.logs()
