"""The hub is installable (issue 11 §3): the systemd unit, the image's Dockerfile, the compose
file and the broker's settings are checked here (no docker engine runs on the test machine:
`docker compose config` where the compose plugin works, the YAML parsed where not), and the
mosquitto ACL is checked against a real mosquitto: a site publishes only under its prefix."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from ruamel.yaml import YAML

from edge_agent.hub.config import load_hub
from tests.conftest import REPO_ROOT, free_port, mosquitto_binary, wait_for_port

DEPLOY = REPO_ROOT / "deploy"


def _unit(path: Path) -> dict[str, list[str]]:
    """A systemd unit's ``Key=value`` lines (keys may repeat)."""
    keys: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            keys.setdefault(key, []).append(value)
    return keys


def test_the_hub_unit_is_hardened_like_the_agent_and_notifies() -> None:
    hub = _unit(REPO_ROOT / "systemd" / "edge-agent-hub.service")
    agent = _unit(REPO_ROOT / "systemd" / "edge-agent.service")
    assert hub["Type"] == ["notify"] and hub["WatchdogSec"] == ["30s"]
    assert hub["Restart"] == ["always"]
    assert "edge-agent hub /etc/edge-agent-hub/hub.yaml" in hub["ExecStart"][0]
    hardening = [k for k in agent if k.startswith(("Protect", "Restrict", "Private"))] + [
        "NoNewPrivileges",
        "CapabilityBoundingSet",
        "AmbientCapabilities",
        "LockPersonality",
        "SystemCallFilter",
        "SystemCallArchitectures",
        "UMask",
    ]
    for key in hardening:
        assert hub.get(key) == agent[key], key
    assert hub["ReadWritePaths"] == ["/var/lib/edge-agent-hub"]
    # Stopping takes <= 10 s (the hub's own bound); systemd waits a little longer.
    assert int(hub["TimeoutStopSec"][0].rstrip("s")) > 10


def test_the_hub_unit_does_not_restart_what_a_restart_cannot_fix() -> None:
    """Found in review: the hub exits 2 (an invalid hub file) and 3 (a later release's store,
    docs/operations.md "Schema versions": "edge-agent hub does the same") like the agent,
    but its unit restarted it every 2 s forever."""
    from edge_agent.commands.hub import EXIT_NEWER_STATE

    hub = _unit(REPO_ROOT / "systemd" / "edge-agent-hub.service")
    [statuses] = hub["RestartPreventExitStatus"]
    assert {"2", str(EXIT_NEWER_STATE)} <= set(statuses.split())


def test_one_dockerfile_builds_the_hub_for_both_architectures() -> None:
    text = (REPO_ROOT / "Dockerfile.hub").read_text()
    assert "--platform" not in re.sub(r"#.*", "", text), "the platform comes from buildx"
    assert re.search(r"^ARG PYTHON_IMAGE=", text, re.M)
    assert text.count("FROM ${PYTHON_IMAGE}") == 2
    # The PostgreSQL driver comes from the hub's lock (binary wheels for both architectures).
    assert "install-venv.sh /src /opt/edge-agent /src/requirements/hub.txt" in text
    assert "\npsycopg-binary==" in (REPO_ROOT / "requirements" / "hub.txt").read_text()
    assert '"hub", "/etc/edge-agent-hub/hub.yaml"' in text
    assert "USER edge-agent-hub" in text and "/readyz" in text


def _compose() -> dict:
    env = {
        "HUB_PG_PASSWORD": "pg",
        "HUB_BROKER_PASSWORD": "mq",
        "SITE_A_MAINTAINX_KEY": "ka",
        "SITE_B_MAINTAINX_KEY": "kb",
    }
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=30
        )
        if probe.returncode == 0:
            rendered = subprocess.run(
                [docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config"],
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, **env},
            )
            assert rendered.returncode == 0, rendered.stderr
            return dict(YAML(typ="safe").load(rendered.stdout))
    return dict(YAML(typ="safe").load((DEPLOY / "compose.yaml").read_text()))


def test_compose_runs_mosquitto_postgres_and_two_replicas() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"mosquitto", "postgres", "hub-1", "hub-2"} <= set(services)
    for name in ("hub-1", "hub-2"):
        hub = services[name]
        assert hub["build"]["dockerfile"] == "Dockerfile.hub"
        assert "postgres" in hub["depends_on"] and "mosquitto" in hub["depends_on"]
    assert services["hub-1"]["hostname"] != services["hub-2"]["hostname"]
    mounted = " ".join(str(v) for v in services["mosquitto"]["volumes"])
    assert "mosquitto.conf" in mounted and "acl" in mounted


def test_the_deployed_hub_file_is_valid_and_sessions_end_with_the_connection() -> None:
    config, diagnostics = load_hub(DEPLOY / "hub" / "hub.yaml")
    assert config is not None, diagnostics
    assert config.broker.session_expiry == 0 and config.dedup.backend == "postgres"
    assert config.hub.id is None  # each replica's id comes from its host name


def test_the_broker_config_persists_and_caps_its_queues() -> None:
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    settings = dict(
        line.split(None, 1) for line in conf.splitlines() if line and not line.startswith("#")
    )
    assert settings["persistence"] == "true"
    assert 0 < int(settings["max_queued_messages"]) <= 10_000
    assert settings["allow_anonymous"] == "false"
    assert "acl_file" in settings


@pytest.fixture
def acl_broker(tmp_path: Path) -> tuple[int, subprocess.Popen[bytes]]:
    """mosquitto with deploy/mosquitto/acl, users hub, site-a and site-b."""
    passwd = tmp_path / "passwd"
    passwd.touch(mode=0o600)
    for user in ("hub", "site-a", "site-b"):
        subprocess.run(
            ["mosquitto_passwd", "-b", str(passwd), user, f"pw-{user}"], check=True, timeout=30
        )
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
        f"acl_file {DEPLOY / 'mosquitto' / 'acl'}\n" + ("user root\n" if os.geteuid() == 0 else "")
        # Started as root, mosquitto would become user mosquitto, who cannot read tmp_path.
    )
    process = subprocess.Popen(
        [mosquitto_binary(), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "mosquitto.log").open("ab"),
    )
    wait_for_port("127.0.0.1", port)
    yield port, process
    process.kill()
    process.wait(timeout=10)


def _client(port: int, user: str, got: list[str] | None = None) -> paho.Client:
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id=f"{user}-{uuid.uuid4().hex[:6]}",
        protocol=paho.MQTTv5,
    )
    client.username_pw_set(user, f"pw-{user}")
    if got is not None:
        client.on_message = lambda c, u, m: got.append(m.topic)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def test_a_site_can_publish_only_under_its_own_prefix(
    acl_broker: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = acl_broker
    got: list[str] = []
    hub = _client(port, "hub", got)
    subscribed = threading.Event()
    hub.on_subscribe = lambda *args: subscribed.set()
    _, mid = hub.subscribe("$share/edge-agent-hub/edge/v1/+/alerts", qos=1)
    site_a = _client(port, "site-a")
    try:
        deadline = time.monotonic() + 5
        while not hub.is_connected() or not site_a.is_connected():
            assert time.monotonic() < deadline, "clients did not connect"
            time.sleep(0.02)
        assert subscribed.wait(5), "no SUBACK"
        for topic in ("edge/v1/site-b/alerts", "edge/v1/site-a/alerts"):
            site_a.publish(topic, b"{}", qos=1).wait_for_publish(timeout=5)
        deadline = time.monotonic() + 5
        while "edge/v1/site-a/alerts" not in got and time.monotonic() < deadline:
            time.sleep(0.02)
        # The own prefix came through; the other site's (published before it) never did.
        assert got == ["edge/v1/site-a/alerts"]
    finally:
        site_a.loop_stop()
        hub.loop_stop()


@pytest.mark.parametrize("kind", ["meters", "assets"])
def test_a_site_publishes_plant_data_only_under_its_own_prefix(
    acl_broker: tuple[int, subprocess.Popen[bytes]], kind: str
) -> None:
    """Issue 14: the plant data topics follow the same rule, and the hub may answer on
    ``results/plant``, which only the site reads."""
    port, _ = acl_broker
    got: list[str] = []
    answers: list[str] = []
    hub = _client(port, "hub", got)
    site_a = _client(port, "site-a", answers)
    subscribed = threading.Event()
    hub.on_subscribe = lambda *args: subscribed.set()
    hub.subscribe(f"$share/edge-agent-hub/edge/v1/+/{kind}", qos=1)
    site_a.subscribe("edge/v1/site-a/results/plant", qos=1)
    try:
        deadline = time.monotonic() + 5
        while not hub.is_connected() or not site_a.is_connected():
            assert time.monotonic() < deadline, "clients did not connect"
            time.sleep(0.02)
        assert subscribed.wait(5), "no SUBACK"
        time.sleep(0.2)  # the site's own SUBACK
        for topic in (f"edge/v1/site-b/{kind}", f"edge/v1/site-a/{kind}"):
            site_a.publish(topic, b"{}", qos=1).wait_for_publish(timeout=5)
        hub.publish("edge/v1/site-a/results/plant", b"{}", qos=1).wait_for_publish(timeout=5)
        deadline = time.monotonic() + 5
        while (not got or not answers) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert got == [f"edge/v1/site-a/{kind}"]
        assert answers == ["edge/v1/site-a/results/plant"]
    finally:
        site_a.loop_stop()
        hub.loop_stop()
