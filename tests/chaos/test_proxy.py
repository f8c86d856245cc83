"""The campaign's fault proxy does what the nemesis relies on: pass, delay, blackhole,
cut and reset, against a real echo server on loopback."""

from __future__ import annotations

import asyncio

import pytest

from tests.chaos.proxy import FaultProxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _roundtrip(port: int, payload: bytes, timeout_s: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), timeout_s)
    finally:
        writer.close()


async def test_the_proxy_passes_delays_blackholes_cuts_and_resets() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    proxy = FaultProxy("echo", int(server.sockets[0].getsockname()[1]))
    await proxy.start()
    try:
        assert await _roundtrip(proxy.port, b"hello") == b"hello"

        proxy.set_mode("delay", 0.05)
        assert await _roundtrip(proxy.port, b"late") == b"late"

        proxy.set_mode("blackhole")
        with pytest.raises(TimeoutError):
            await _roundtrip(proxy.port, b"lost", timeout_s=0.5)

        proxy.set_mode("cut")
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await _roundtrip(proxy.port, b"refused")

        proxy.set_mode("pass")
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"x")
        assert await asyncio.wait_for(reader.readexactly(1), 5) == b"x"
        proxy.reset()  # an open connection is reset, the next one works
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 5)
        writer.close()
        assert await _roundtrip(proxy.port, b"again") == b"again"

        with pytest.raises(ValueError, match="unknown proxy mode"):
            proxy.set_mode("sideways")
    finally:
        await proxy.close()
        server.close()
