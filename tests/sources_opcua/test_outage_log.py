"""An OPC UA server that stays down is one warning in the journal, not one per connect
attempt (a connect is tried every ``max(poll, 5 s)``, issue 21 §3): the other attempts log
at debug until a reminder is due (see tests/sources_modbus/test_outage_log.py)."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import free_port

from .conftest import Collector, connection, make_source, running, wait_until


async def test_a_server_that_stays_down_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="edge_agent.sources.opcua")
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/nothing/"
    source = make_source(connection(endpoint, backoff={"initial": "10ms", "max": "20ms"}))
    async with running(source, Collector()):
        await wait_until(lambda: source.stats.connect_attempts >= 5)
    down = [r for r in caplog.records if r.getMessage() == "OPC UA connection down."]
    assert len(down) >= 4
    assert [r.levelno for r in down if r.levelno >= logging.WARNING] == [logging.WARNING]
