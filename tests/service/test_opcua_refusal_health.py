"""Issue 19 through the agent process: an OPC UA refusal's cause in /readyz, the metric and
the log (once), and a certificate that expires within 30 days in /readyz, the metric and the
log, against a real secured server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.simulators.opcua import SERVER_APPLICATION_URI, OpcUaSimulator, SimulatorSecurity
from edge_agent.sources.opcua.certs import generate_self_signed

from .conftest import API_KEY, AgentProcess, BackgroundLoop, direct_site, wait_until

CLIENT_URI = "urn:edge-agent:client"
DAY_S = 86_400


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("refusal-pki")
    # The server's certificate runs out in 20 days: the pinned copy is warned about.
    generate_self_signed(root / "server.pem", root / "server.key", SERVER_APPLICATION_URI, days=20)
    generate_self_signed(root / "trusted.pem", root / "trusted.key", CLIENT_URI)
    generate_self_signed(root / "stranger.pem", root / "stranger.key", CLIENT_URI, days=365)
    return root


@pytest.fixture(scope="module")
def secure_server(background: BackgroundLoop, pki: Path) -> Iterator[OpcUaSimulator]:
    simulator = OpcUaSimulator(
        security=SimulatorSecurity(
            certificate=pki / "server.pem",
            private_key=pki / "server.key",
            trusted_clients=[pki / "trusted.pem"],
            policies=("Basic256Sha256_SignAndEncrypt",),
        ),
    )
    background.call(simulator.start())
    try:
        yield simulator
    finally:
        background.call(simulator.close())


def test_a_refusal_and_an_expiring_certificate_in_readyz_metrics_and_log(
    plant: Any,
    emulator: Any,
    secure_server: OpcUaSimulator,
    pki: Path,
    health_port: int,
    tmp_path: Path,
    make_agent: Callable[[dict[str, Any]], AgentProcess],
) -> None:
    document = direct_site(plant, emulator, health_port, tmp_path)
    document["connections"]["ua1"] = {
        "protocol": "opcua",
        "endpoint": secure_server.endpoint,
        "poll": "200ms",
        "backoff": {"initial": "100ms", "max": "300ms"},
        "security": {
            "policy": "Basic256Sha256",
            "mode": "SignAndEncrypt",
            "certificate": str(pki / "stranger.pem"),
            "private_key": str(pki / "stranger.key"),
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
    agent.wait_serving()

    def ua1() -> dict[str, Any]:
        _status, body = agent.json("/readyz")
        found: dict[str, Any] = body.get("sources", {}).get("ua1", {})
        return found

    wait_until(lambda: ua1().get("refused"), what="the refusal's cause in /readyz")
    status, body = agent.json("/readyz")
    assert status == 503
    source = body["sources"]["ua1"]
    assert source["refused"] == "client_certificate_untrusted"
    assert source["last_error"].startswith(
        f"the server does not trust our certificate {pki / 'stranger.pem'} (SHA-256 "
    )
    assert f"source ua1 is not connected: {source['last_error']}" in body["reasons"]
    expiring = [d for d in body["degraded"] if d.startswith("source ua1: the server certificate")]
    assert len(expiring) == 1 and "(in 19 days)" in expiring[0], body["degraded"]

    assert (
        agent.metric(
            "edge_agent_source_refused", connection="ua1", cause="client_certificate_untrusted"
        )
        == 1.0
    )
    server_left = agent.metric(
        "edge_agent_certificate_expiry_seconds", connection="ua1", which="server"
    )
    client_left = agent.metric(
        "edge_agent_certificate_expiry_seconds", connection="ua1", which="client"
    )
    assert server_left is not None and 19 * DAY_S < server_left <= 20 * DAY_S
    assert client_left is not None and 364 * DAY_S < client_left <= 365 * DAY_S

    # Several attempts later, the refusal and the expiry were each logged once.
    wait_until(
        lambda: (agent.metric("edge_agent_source_read_errors_total", connection="ua1") or 0) >= 10,
        what="more failed polls",
    )
    logs = agent.logs()
    assert logs.count("OPC UA connection refused.") == 1, logs[-3000:]
    assert logs.count("OPC UA certificate expires soon.") == 1, logs[-3000:]
