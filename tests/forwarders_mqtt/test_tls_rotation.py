"""Issue 17 §4: rotated client certificates are used at the next connect (a file change
triggers it), and a broker that refuses the certificate or a host that does not resolve
says so instead of "connect failed: Unspecified error"."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path
from typing import Any

from edge_agent.common.mqtt_link import MqttLink
from edge_agent.config.models import Mqtt
from edge_agent.forwarders.mqtt import MqttForwarder
from edge_agent.outbox import Outbox
from tests.conftest import free_port

from .certs import issue, make_pki
from .conftest import async_wait_until, events, make_broker
from .test_tls import tls_listener


def install(certificate: Path, key: Path, live: Path) -> None:
    """What an operator's renewal does: each file replaced by a rename, key first."""
    live.mkdir(exist_ok=True)
    for source, name in ((key, "client.key"), (certificate, "client.pem")):
        shutil.copyfile(source, live / f".{name}.new")
        (live / f".{name}.new").replace(live / name)


async def test_a_rotated_certificate_is_used_without_sighup(
    tmp_path: Path, names: tuple[str, str], subscribe: Any
) -> None:
    prefix, site = names
    pki = make_pki(tmp_path / "pki")
    stranger = make_pki(tmp_path / "stranger")  # a CA the broker does not trust
    live = tmp_path / "live"
    install(pki["client"], pki["client_key"], live)
    tls_port = free_port()
    broker = make_broker(tmp_path, extra=tls_listener(tls_port, pki))
    outbox = Outbox.open(tmp_path / "outbox", 1_000_000)
    config = Mqtt.model_validate(
        {
            "host": "127.0.0.1",
            "port": tls_port,
            "topic_prefix": prefix,
            "confirm": "broker",
            "tls": {
                "ca": "pki/ca.pem",
                "certificate": "live/client.pem",
                "private_key": "live/client.key",
            },
            "backoff": {"initial": "100ms", "max": "300ms"},
        }
    )
    forwarder = MqttForwarder(config, site, outbox, tmp_path, files_check_s=0.1)
    task = asyncio.create_task(forwarder.run())
    try:
        sub = subscribe(broker.port, f"{prefix}/{site}/alerts")
        outbox.put_many(events(site, 3))
        await async_wait_until(lambda: len(sub.payloads()) >= 3, what="3 alerts, first cert")

        # A certificate of a CA the broker does not trust: the link is rebuilt with it
        # (proof the new file is what is offered) and the refusal says so.
        install(stranger["client"], stranger["client_key"], live)
        await async_wait_until(lambda: forwarder.status.tls_rotations >= 1)
        await async_wait_until(
            lambda: (
                "the broker refused the client certificate" in (forwarder.status.last_error or "")
            ),
            what="refusal named",
        )
        assert not forwarder.status.connected
        outbox.put_many(events(site, 2, start=3))
        assert outbox.stats().depth == 2  # held, not lost

        # The renewed certificate from the broker's CA: connected again, the rest drains.
        issue(tmp_path / "pki", "renewed")
        install(tmp_path / "pki" / "renewed.pem", tmp_path / "pki" / "renewed.key", live)
        await async_wait_until(lambda: len(sub.payloads()) >= 5, what="5 alerts, renewed cert")
        await async_wait_until(lambda: outbox.stats().depth == 0, what="drained")
        assert forwarder.status.tls_rotations >= 2
        assert [p["seq"] for p in sub.payloads()] == list(range(5))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        outbox.close()
        broker.kill()


async def test_files_that_do_not_load_leave_the_working_link_alone(
    tmp_path: Path, names: tuple[str, str], subscribe: Any
) -> None:
    """A rotation half done (garbage where the certificate was) is not applied: the link
    that works keeps working, and the fixed files are picked up when they change again."""
    prefix, site = names
    pki = make_pki(tmp_path / "pki")
    live = tmp_path / "live"
    install(pki["client"], pki["client_key"], live)
    tls_port = free_port()
    broker = make_broker(tmp_path, extra=tls_listener(tls_port, pki))
    outbox = Outbox.open(tmp_path / "outbox", 1_000_000)
    config = Mqtt.model_validate(
        {
            "host": "127.0.0.1",
            "port": tls_port,
            "topic_prefix": prefix,
            "confirm": "broker",
            "tls": {
                "ca": "pki/ca.pem",
                "certificate": "live/client.pem",
                "private_key": "live/client.key",
            },
        }
    )
    forwarder = MqttForwarder(config, site, outbox, tmp_path, files_check_s=0.05)
    task = asyncio.create_task(forwarder.run())
    try:
        sub = subscribe(broker.port, f"{prefix}/{site}/alerts")
        await async_wait_until(lambda: forwarder.status.connected, what="connected")
        link = forwarder._link
        (live / "client.pem").write_text("-----BEGIN CERTIFICATE-----\ngarbage\n", "ascii")
        await asyncio.sleep(0.3)  # several looks at the files
        assert forwarder._link is link and forwarder.status.connected
        assert forwarder.status.tls_rotations == 0
        outbox.put_many(events(site, 2))
        await async_wait_until(lambda: len(sub.payloads()) >= 2, what="sent on the old link")
        issue(tmp_path / "pki", "renewed")
        install(tmp_path / "pki" / "renewed.pem", tmp_path / "pki" / "renewed.key", live)
        await async_wait_until(lambda: forwarder.status.tls_rotations == 1)
        await async_wait_until(lambda: forwarder.status.connected and forwarder._link is not link)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        outbox.close()
        broker.kill()


async def test_no_client_certificate_and_an_unresolvable_host_say_what_is_wrong(
    tmp_path: Path,
) -> None:
    pki = make_pki(tmp_path / "pki")
    tls_port = free_port()
    broker = make_broker(tmp_path, extra=tls_listener(tls_port, pki))
    try:
        config = Mqtt.model_validate(
            {"host": "127.0.0.1", "port": tls_port, "tls": {"ca": "pki/ca.pem"}}
        )
        without = MqttLink.from_config(config, "no-cert", tmp_path)
        nowhere = MqttLink(
            "broker.invalid", free_port(), "nowhere"
        )  # .invalid never resolves (RFC 2606)
        for link in (without, nowhere):
            await link.start()
        try:
            await async_wait_until(lambda: without.last_error is not None, what="refusal")
            await async_wait_until(lambda: nowhere.last_error is not None, what="dns error")
        finally:
            for link in (without, nowhere):
                await link.close()
        assert without.last_error is not None
        # mosquitto sends the TLS alert "certificate required", or (seen under load) closes
        # the connection before it is read: both say what to configure.
        assert "client certificate and none is configured" in without.last_error, without.last_error
        assert nowhere.last_error is not None
        assert nowhere.last_error.startswith("the broker host 'broker.invalid' does not resolve"), (
            nowhere.last_error
        )
    finally:
        broker.kill()
