"""deploy/mosquitto/acl for alarm commands: only the hub writes a site's command topic, and
a site reads only its own (a real mosquitto with the shipped ACL file)."""

from __future__ import annotations

import subprocess
import threading
import time

import paho.mqtt.client as paho

from tests.hub.test_hub_deploy import _client, acl_broker

__all__ = ["acl_broker"]


def _subscribed(client: paho.Client, topic: str) -> None:
    done = threading.Event()
    client.on_subscribe = lambda *args: done.set()
    client.subscribe(topic, qos=1)
    assert done.wait(5), "no SUBACK"


def test_only_the_hub_writes_a_sites_commands_and_a_site_reads_only_its_own(
    acl_broker: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = acl_broker
    got_a: list[str] = []
    got_hub: list[str] = []
    site_a = _client(port, "site-a", got_a)
    site_b = _client(port, "site-b")
    hub = _client(port, "hub", got_hub)
    clients = (site_a, site_b, hub)
    try:
        deadline = time.monotonic() + 5
        while not all(client.is_connected() for client in clients):
            assert time.monotonic() < deadline, "clients did not connect"
            time.sleep(0.02)
        # site-a asks for every site's commands: the broker delivers only its own.
        _subscribed(site_a, "edge/v1/+/commands")
        _subscribed(hub, "$share/edge-agent-hub/edge/v1/+/command-results")  # as the hub does
        site_b.publish("edge/v1/site-a/commands", b"forged", qos=1).wait_for_publish(5)
        hub.publish("edge/v1/site-b/commands", b"for b", qos=1).wait_for_publish(5)
        site_a.publish("edge/v1/site-b/command-results", b"forged", qos=1).wait_for_publish(5)
        hub.publish("edge/v1/site-a/commands", b"for a", qos=1).wait_for_publish(5)
        site_a.publish("edge/v1/site-a/command-results", b"answer", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while (not got_a or not got_hub) and time.monotonic() < deadline:
            time.sleep(0.02)
        # What was published before the allowed messages never arrived.
        assert got_a == ["edge/v1/site-a/commands"]
        assert got_hub == ["edge/v1/site-a/command-results"]
    finally:
        for client in clients:
            client.loop_stop()
