"""TLS to the broker: CA, client certificate and key from the ``tls:`` section."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from edge_agent.config.models import Mqtt
from edge_agent.forwarders.mqtt import MqttForwarder
from edge_agent.outbox import Outbox
from tests.conftest import free_port

from .certs import make_pki
from .conftest import async_wait_until, events, make_broker


def tls_listener(port: int, pki: dict[str, Path]) -> str:
    return (
        f"listener {port} 127.0.0.1\n"
        f"cafile {pki['ca']}\ncertfile {pki['server']}\nkeyfile {pki['server_key']}\n"
        "require_certificate true\n"
    )


async def test_tls_with_client_certificate(
    tmp_path: Path, names: tuple[str, str], subscribe: Any
) -> None:
    prefix, site = names
    pki = make_pki(tmp_path / "pki")
    tls_port = free_port()
    broker = make_broker(tmp_path, extra=tls_listener(tls_port, pki))
    outbox = Outbox.open(tmp_path / "outbox", 1_000_000)
    try:
        sub = subscribe(broker.port, f"{prefix}/{site}/alerts")  # the plain listener
        outbox.put_many(events(site, 10))

        def forwarder_for(tls: dict[str, str]) -> MqttForwarder:
            config = Mqtt.model_validate(
                {
                    "host": "127.0.0.1",
                    "port": tls_port,
                    "topic_prefix": prefix,
                    "tls": tls,
                    "confirm": "broker",
                    "backoff": {"initial": "100ms", "max": "500ms"},
                }
            )
            # Relative paths are taken from the site file's folder (base_dir).
            return MqttForwarder(config, site, outbox, tmp_path)

        # Without a client certificate the broker refuses the handshake: nothing is lost.
        refused = forwarder_for({"ca": "pki/ca.pem"})
        task = asyncio.create_task(refused.run())
        await async_wait_until(
            lambda: refused._link is not None and refused._link.connect_attempts >= 2
        )
        assert not refused.status.connected
        await async_wait_until(lambda: refused.status.last_error is not None, what="error")
        assert outbox.stats().depth == 10
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

        accepted = forwarder_for(
            {"ca": "pki/ca.pem", "certificate": "pki/client.pem", "private_key": "pki/client.key"}
        )
        task = asyncio.create_task(accepted.run())
        try:
            await async_wait_until(lambda: len(sub.payloads()) >= 10, what="10 alerts over TLS")
            await async_wait_until(lambda: outbox.stats().depth == 0, what="drained")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert [p["seq"] for p in sub.payloads()] == list(range(10))
    finally:
        outbox.close()
        broker.kill()


async def test_missing_tls_files_hold_alerts_and_a_reload_after_the_fix_sends_them(
    tmp_path: Path, names: tuple[str, str], subscribe: Any
) -> None:
    """Issue 17 §4: a missing CA file used to kill the forwarder with an error naming no
    file, and a SIGHUP after the fix changed nothing. Now every alert is held, the error
    names the file, and ``reload_credentials`` (SIGHUP) after the fix connects."""
    prefix, site = names
    pki = make_pki(tmp_path / "pki")
    tls_port = free_port()
    broker = make_broker(tmp_path, extra=tls_listener(tls_port, pki))
    outbox = Outbox.open(tmp_path / "outbox", 1_000_000)
    try:
        sub = subscribe(broker.port, f"{prefix}/{site}/alerts")
        outbox.put_many(events(site, 5))
        config = Mqtt.model_validate(
            {
                "host": "127.0.0.1",
                "port": tls_port,
                "topic_prefix": prefix,
                "confirm": "broker",
                "tls": {
                    "ca": "later/ca.pem",
                    "certificate": "later/client.pem",
                    "private_key": "later/client.key",
                },
                "backoff": {"initial": "100ms", "max": "500ms"},
            }
        )
        forwarder = MqttForwarder(config, site, outbox, tmp_path)
        task = asyncio.create_task(forwarder.run())
        try:
            await async_wait_until(lambda: forwarder.status.holding is not None, what="held")
            assert forwarder.status.holding is not None
            assert str(tmp_path / "later" / "ca.pem") in forwarder.status.holding
            assert not task.done()  # held, not dead
            assert outbox.stats().depth == 5
            # The installer copies the files into place and reloads.
            (tmp_path / "pki").rename(tmp_path / "later")
            forwarder.reload_credentials()
            await async_wait_until(lambda: len(sub.payloads()) >= 5, what="5 alerts over TLS")
            await async_wait_until(lambda: outbox.stats().depth == 0, what="drained")
            assert forwarder.status.holding is None
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        outbox.close()
        broker.kill()
