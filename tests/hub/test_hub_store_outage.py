"""The hub's readiness follows its store (issue 17, section 5): PostgreSQL unreachable →
``/readyz`` 503 with the reason and ``edge_agent_hub_store_errors_total`` counting; back →
ready again. PostgreSQL is reached through a TCP proxy the test cuts, so the shared server
keeps running for every other test."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from edge_agent.hub.app import Hub
from edge_agent.hub.config import HubConfig
from edge_agent.simulators.maintainx import Emulator
from tests.conftest import Broker
from tests.hub.conftest import PG_DSN, async_wait_until, hub_dict


class CuttableProxy:
    """A loopback TCP proxy to ``target``; :meth:`cut` drops every connection and stops
    listening (connections are refused), :meth:`restore` listens again on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def restore(self) -> None:
        await self.start()


def _readyz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


async def test_readyz_follows_postgresql(
    mosquitto: Broker,
    emulator: Emulator,
    tmp_path: Path,
    pg_schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    target = conninfo_to_dict(PG_DSN)
    proxy = CuttableProxy(str(target.get("host") or "127.0.0.1"), int(target.get("port") or 5432))
    await proxy.start()
    monkeypatch.setenv(
        "HUB_TEST_PG_DSN", make_conninfo(PG_DSN, host="127.0.0.1", port=str(proxy.port))
    )
    dedup = {
        "backend": "postgres",
        "dsn": "${HUB_TEST_PG_DSN}",
        "table_prefix": f"{pg_schema}.hub_",
        "pool": 2,
    }
    data = hub_dict(mosquitto, emulator.url, tmp_path / "s", dedup=dedup)
    hub = Hub(HubConfig.model_validate(data), tmp_path)
    hub.refresh_s = 0.2  # the store's probe, every 5 s by default
    await hub.start()
    try:
        port = hub.health_port
        await async_wait_until(lambda: hub.readiness()[0], 10, "ready")
        assert (await asyncio.to_thread(_readyz, port))[0] == 200

        await proxy.cut()
        await async_wait_until(lambda: not hub.readiness()[0], 15, "unready")
        status, body = await asyncio.to_thread(_readyz, port)
        assert status == 503 and body["store"]["available"] is False
        assert any(r.startswith("dedup store unavailable: ") for r in body["reasons"])
        assert "dedup store unavailable" not in json.dumps(body["sites"])
        text = await asyncio.to_thread(_metrics, port)
        assert "edge_agent_hub_store_available 0.0" in text
        assert "edge_agent_hub_store_errors_total 0.0" not in text
        assert "edge_agent_hub_store_errors_total" in text

        await proxy.restore()
        await async_wait_until(lambda: hub.readiness()[0], 15, "ready again")
        status, body = await asyncio.to_thread(_readyz, port)
        assert status == 200 and body["store"] == {"available": True, "error": None}
    finally:
        await hub.close()
        await proxy.cut()


async def test_after_an_outage_every_pooled_connection_is_renewed(pg_schema: str) -> None:
    """One call that finds PostgreSQL gone closes the idle connections too: after the
    outage, calls reconnect instead of each stale connection failing one call first."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from edge_agent.hub.store import StoreError
    from edge_agent.hub.store_postgres import PostgresHubStore

    target = conninfo_to_dict(PG_DSN)
    proxy = CuttableProxy(str(target.get("host") or "127.0.0.1"), int(target.get("port") or 5432))
    await proxy.start()
    dsn = make_conninfo(PG_DSN, host="127.0.0.1", port=str(proxy.port))
    store = await asyncio.to_thread(
        PostgresHubStore, dsn, pool_size=4, table_prefix=f"{pg_schema}.hub_"
    )
    try:
        await proxy.cut()
        await proxy.restore()
        with pytest.raises(StoreError):
            await asyncio.to_thread(store.pending_counts)  # the connection it took was cut
        # Every other pooled connection was cut too: closed now, each reconnects on its
        # next use (unclosed, each would fail one more call first).
        idle = list(store._pool._free.queue)
        assert len(idle) == 4 and all(conn.closed for conn in idle)
        assert await asyncio.to_thread(store.pending_counts) == {}
    finally:
        await asyncio.to_thread(store.close)
        await proxy.cut()
