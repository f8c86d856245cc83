"""No secret leaves the process, by any door.

The MaintainX API key is planted in every error path a test can reach: a MaintainX that
echoes the request's headers (``Authorization: Bearer <key>``) in its 500 and 400 bodies,
which the agent quotes in ``/readyz``, its logs and the dead-letter reasons on disk; a
dead letter written by an older agent that did not redact; CLI output (``outbox dead``,
``print-config``, ``read``, ``validate``); an MQTT payload. Each output is searched for the
key in its raw, JSON-escaped and percent-encoded spellings.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import paho.mqtt.client as paho
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.common.mqtt_link import MqttLink
from edge_agent.outbox import Outbox
from edge_agent.redaction import redact, register_secret
from tests.conftest import REPO_ROOT, Broker, free_port
from tests.service.conftest import (
    API_KEY,
    AgentProcess,
    BackgroundLoop,
    maintainx_forwarding,
    site_document,
    wait_until,
    write_site,
)


def spellings(secret: str) -> list[str]:
    """The ways an output could carry ``secret``."""
    return [secret, json.dumps(secret)[1:-1], quote(secret, safe="")]


def assert_clean(text: str, where: str, secret: str = API_KEY) -> None:
    for spelling in spellings(secret):
        assert spelling not in text, f"the secret appears in {where}"


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
        cwd=cwd,
        timeout=60,
        check=False,
    )


@pytest.fixture
def echoing_maintainx() -> Iterator[Any]:
    """A MaintainX that knows our key, has no assets (every work order is refused with
    400 "Asset not found") and echoes request headers in every error body."""
    from edge_agent.simulators.maintainx import Emulator

    emu = Emulator(keys={API_KEY: 1}, rate_limiting=False)
    emu.faults.echo_headers = True
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def test_key_echoed_by_maintainx_reaches_no_output(
    plant: Any,
    echoing_maintainx: Any,
    background: BackgroundLoop,
    tmp_path: Path,
) -> None:
    health_port = free_port()
    document = site_document(
        modbus_port=plant.port,
        health_port=health_port,
        storage=tmp_path / "state",
        forwarding=maintainx_forwarding(echoing_maintainx),
    )
    site = write_site(tmp_path / "site.yaml", document)
    agent = AgentProcess(site, tmp_path / "state", health_port, tmp_path / "agent.log")
    background.run(lambda: plant.set_value("p101_vibration", 2.5))
    agent.start()
    try:
        agent.wait_serving()
        background.run(lambda: plant.set_value("p101_vibration", 12.0))

        # MaintainX answers 400 with the echoed headers: the alert is dead-lettered with
        # that body as its reason, which /readyz shows as the forwarder's last error.
        def readyz_quotes_the_echo() -> str | None:
            body = agent.get("/readyz")[1]
            return body if "requestHeaders" in body else None

        readyz = wait_until(readyz_quotes_the_echo, 30, "the 400 body in /readyz")
        assert "Bearer ***" in readyz  # the echo did reach the output, redacted
        wait_until(
            lambda: (agent.metric("edge_agent_outbox_dead_letters") or 0) >= 1,
            30,
            "the dead letter",
        )
        outputs = {path: agent.get(path)[1] for path in ("/readyz", "/healthz", "/metrics")}
        assert agent.stop() == 0
    finally:
        agent.kill()
        background.run(lambda: plant.set_value("p101_vibration", 2.5))
    assert echoing_maintainx.faults.injected["echo_headers"] >= 1
    for path, body in outputs.items():
        assert_clean(body, path)
    logs = agent.logs()
    assert "requestHeaders" in logs
    assert_clean(logs, "the agent's log")

    # On disk: the dead letter's reason and every other byte of the state directory.
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for spelling in spellings(API_KEY):
                assert spelling.encode() not in data, f"the secret is on disk in {path.name}"

    env = {"MAINTAINX_API_KEY": API_KEY}
    for args in (("dead",), ("dead", "--json"), ("list",), ("status",)):
        result = cli("outbox", str(site), *args, env=env, cwd=tmp_path)
        assert_clean(result.stdout + result.stderr, f"outbox {' '.join(args)}")
    dead = cli("outbox", str(site), "dead", "--json", env=env, cwd=tmp_path)
    assert "Asset not found" in dead.stdout and "Bearer ***" in dead.stdout


def test_cli_redacts_what_it_prints(plant: Any, tmp_path: Path) -> None:
    """A dead letter stored by an agent that did not redact, and the key as text in a site
    file: no command prints it."""
    key = "mx-cli-" + secrets.token_hex(12)  # never registered in this test process
    env = {"MAINTAINX_API_KEY": key}
    document = site_document(
        modbus_port=plant.port,
        health_port=free_port(),
        storage=tmp_path / "state",
        forwarding={
            "mode": "maintainx",
            "maintainx": {"base_url": "http://127.0.0.1:9", "api_key": "${MAINTAINX_API_KEY}"},
        },
    )
    document["sensors"]["p101_vibration"]["unit"] = key  # printed by read and print-config
    site = write_site(tmp_path / "site.yaml", document)
    with Outbox.open(tmp_path / "state" / "outbox", 10_000_000) as outbox:
        item_id = outbox.put({"event": "activated", "note": "an old alert"})
        outbox.dead_letter(item_id, f"MaintainX HTTP 400: Authorization: Bearer {key}")
    raw = b"".join(p.read_bytes() for p in (tmp_path / "state").rglob("*") if p.is_file())
    assert key.encode() in raw  # planted as an older version would have stored it

    bad = json.loads(json.dumps(document))
    bad["sensors"]["p101_vibration"][key] = 1  # an unknown key: validate names it
    bad_site = write_site(tmp_path / "bad.yaml", bad)

    runs = {
        "outbox dead": cli("outbox", str(site), "dead", env=env, cwd=tmp_path),
        "outbox dead --json": cli("outbox", str(site), "dead", "--json", env=env, cwd=tmp_path),
        "print-config": cli("print-config", str(site), env=env, cwd=tmp_path),
        "read": cli("read", str(site), "--json", env=env, cwd=tmp_path),
        "validate": cli("validate", str(bad_site), env=env, cwd=tmp_path),
        "validate --format json": cli(
            "validate", str(bad_site), "--format", "json", env=env, cwd=tmp_path
        ),
    }
    for name, result in runs.items():
        output = result.stdout + result.stderr
        assert "***" in output, f"{name} did not reach the planted key:\n{output}"
        assert_clean(output, name, key)


async def test_mqtt_payloads_are_redacted(mosquitto: Broker) -> None:
    """The agent's alerts and the hub's results both leave through MqttLink.publish."""
    key = "mqtt-" + secrets.token_hex(12)
    register_secret(key)
    received: list[bytes] = []
    got = threading.Event()

    def on_message(_client: Any, _userdata: Any, message: Any) -> None:
        received.append(message.payload)
        got.set()

    watcher = paho.Client(paho.CallbackAPIVersion.VERSION2)
    watcher.on_message = on_message
    watcher.connect("127.0.0.1", mosquitto.port)
    watcher.subscribe("leaks/#", qos=1)
    watcher.loop_start()
    link = MqttLink("127.0.0.1", mosquitto.port, "leak-test")
    await link.start()
    try:
        await asyncio.wait_for(link.wait_connected(), 10)
        payload = json.dumps({"error": f"HTTP 401 for Bearer {key}"}).encode()
        await asyncio.wait_for(link.publish("leaks/results", payload, qos=1), 10)
        assert await asyncio.to_thread(got.wait, 10)
    finally:
        await link.close()
        watcher.loop_stop()
        watcher.disconnect()
    assert received and b"Bearer ***" in received[0]
    assert_clean(received[0].decode(), "an MQTT payload", key)


@settings(max_examples=200)
@given(
    tail=st.text(max_size=40).filter(lambda s: "*" not in s),
    before=st.text(max_size=30),
    after=st.text(max_size=30),
)
def test_redaction_finds_every_spelling(tail: str, before: str, after: str) -> None:
    # A marker first: the registry is the process's own, and other tests' outputs must
    # not lose ordinary text to a random "secret".
    from edge_agent.redaction import redact_bytes

    secret = "\u00a7leak\u00a7" + tail
    register_secret(secret)
    for spelling in spellings(secret):
        text = before + spelling + after
        assert spelling not in redact(text).replace("***", "")
        data = text.encode("utf-8", errors="surrogateescape")
        assert spelling.encode("utf-8", errors="surrogateescape") not in redact_bytes(data).replace(
            b"***", b""
        )
