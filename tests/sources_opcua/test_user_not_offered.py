"""A user name against a server that takes none (anonymous only): the reason says to remove
it, not to check a password that was never the problem."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from edge_agent.readings import Quality
from edge_agent.simulators.opcua import OpcUaSimulator

from .conftest import connection, make_source

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[OpcUaSimulator]:
    simulator = OpcUaSimulator()  # no security, no users: anonymous only
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()


async def test_a_user_name_the_server_does_not_take_says_to_remove_it(
    sim: OpcUaSimulator, tmp_path: Path
) -> None:
    (tmp_path / "ua.pw").write_text("Sup3rSecret\n")
    conn = connection(sim.endpoint, username="operator", password="file:ua.pw")
    readings = await make_source(conn, base_dir=tmp_path).read_once()
    assert all(r.quality is Quality.BAD for r in readings)
    assert readings[0].reason == (
        "the server takes no user name on None/None (it takes Anonymous): remove username and "
        "password from this connection, or enable user names on the server"
    )
