"""OPC UA security benchmark: how long `read` takes to say each refusal, what a client pair
costs to make, and what the expiry watch costs per connection attempt.

A secured simulator in this process (Basic256Sha256 SignAndEncrypt only, a user, one trusted
client certificate). Each case is `OpcUaSource.read_once()` (connect, read, disconnect),
five times, median. A refusal should be said as fast as a good read is done.

Run: ``.venv/bin/python bench/opcua_security.py``
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from edge_agent.config.models import Defaults, OpcUa, Sensor
from edge_agent.simulators.opcua import SERVER_APPLICATION_URI, OpcUaSimulator, SimulatorSecurity
from edge_agent.sources.opcua.certs import generate_self_signed, new_key
from edge_agent.sources.opcua.expiry import not_after
from edge_agent.sources.opcua.source import OpcUaSource

CLIENT_URI = "urn:edge-agent:client"
RUNS = 5


def connection(endpoint: str, **settings: Any) -> OpcUa:
    return OpcUa.model_validate(
        {"protocol": "opcua", "endpoint": endpoint, "timeout": "2s", **settings}
    )


def secure(endpoint: str, certificate: str = "client", password: str = "file:pw") -> OpcUa:
    return connection(
        endpoint,
        security={
            "policy": "Basic256Sha256",
            "mode": "SignAndEncrypt",
            "certificate": f"{certificate}.pem",
            "private_key": f"{certificate}.key",
            "server_certificate": "server.pem",
            "application_uri": CLIENT_URI,
        },
        username="user",
        password=password,
    )


async def main(root: Path) -> None:
    generate_self_signed(root / "server.pem", root / "server.key", SERVER_APPLICATION_URI)
    for name in ("client", "stranger"):
        generate_self_signed(root / f"{name}.pem", root / f"{name}.key", CLIENT_URI)
    (root / "pw").write_text("pw\n")
    (root / "wrong").write_text("not-it\n")
    simulator = OpcUaSimulator(
        security=SimulatorSecurity(
            certificate=root / "server.pem",
            private_key=root / "server.key",
            trusted_clients=[root / "client.pem"],
            policies=("Basic256Sha256_SignAndEncrypt",),
        ),
        users={"user": "pw"},
    )
    await simulator.start()
    endpoint = simulator.endpoint
    cases = {
        "good read": secure(endpoint),
        "client_certificate_untrusted": secure(endpoint, certificate="stranger"),
        "user_refused": secure(endpoint, password="file:wrong"),
        "policy_not_offered (None)": connection(endpoint, username="user", password="file:pw"),
    }
    sensors = {"t": Sensor(connection="ua1", node="ns=2;s=Line1.P101.BearingTemp")}
    try:
        for name, conn in cases.items():
            times = []
            for _ in range(RUNS):
                source = OpcUaSource("ua1", conn, sensors, Defaults(), root)
                started = time.perf_counter()
                readings = await source.read_once()
                times.append(time.perf_counter() - started)
            print(
                f"{name:30s} read_once median {statistics.median(times) * 1e3:6.0f} ms "
                f"({readings[0].quality.value})"
            )
    finally:
        await simulator.close()
    keys = []
    for _ in range(10):
        started = time.perf_counter()
        new_key()
        keys.append(time.perf_counter() - started)
    print(f"RSA 2048 key for a client pair: median {statistics.median(keys) * 1e3:.0f} ms")
    files = {"client": root / "client.pem", "server": root / "server.pem"}
    started = time.perf_counter()
    for _ in range(1000):
        not_after(files)
    per_attempt = (time.perf_counter() - started) / 1000
    print(f"expiry watch per connection attempt (two files): {per_attempt * 1e6:.0f} µs")


if __name__ == "__main__":
    logging.disable(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(main(Path(folder)))
