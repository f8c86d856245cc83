"""The HTTP library's own failures on a connection torn down mid-way are link faults.

Found by the fault campaign (MaintainX restarting): anyio asked a socket the connection had
already lost for its peer and raised ``AttributeError`` out of ``httpx``; the hub took it for
a poison message, answered the site ``rejected``, and the alarm ended in the dead letters
with no work order. The transport below is the real one to the emulator, made to fail that
way on chosen requests (the race itself cannot be timed on purpose)."""

from __future__ import annotations

import httpx
import pytest

from edge_agent.maintainx.errors import RETRYABLE, OutcomeUnknown
from edge_agent.simulators.maintainx import Emulator
from tests.maintainx.conftest import asset_id, emulator, make_client  # noqa: F401  fixtures


class TornDownTransport(httpx.AsyncHTTPTransport):
    """The real transport; the first ``failures`` requests fail as anyio's did."""

    def __init__(self, failures: int, error: Exception) -> None:
        super().__init__()
        self.failures = failures
        self.error = error

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        return await super().handle_async_request(request)


ANYIO_BUG = AttributeError("'NoneType' object has no attribute 'getpeername'")


@pytest.mark.parametrize("error", [ANYIO_BUG, RuntimeError("transport state"), OSError(9, "EBADF")])
async def test_a_transport_failure_is_an_unknown_outcome_retried_to_one_work_order(
    emulator: Emulator,  # noqa: F811
    asset_id: int,  # noqa: F811
    error: Exception,
) -> None:
    transport = TornDownTransport(2, error)
    async with make_client(emulator, transport=transport) as client:
        created = None
        for _ in range(3):
            try:
                created = await client.create_work_order(
                    {"title": "P-101 hot", "assetId": asset_id}
                )
                break
            except OutcomeUnknown as exc:
                assert isinstance(exc, RETRYABLE)
                assert type(error).__name__ in str(exc)
        assert created is not None
        assert client.transport_errors == 2
    titles = [wo["title"] for wo in emulator.work_orders]
    assert titles.count("P-101 hot") == 1


async def test_a_request_this_process_cannot_build_is_not_taken_for_a_link_fault(
    emulator: Emulator,  # noqa: F811
) -> None:
    async with make_client(emulator) as client:
        with pytest.raises(TypeError):  # a body JSON cannot hold: the caller's bug, loud
            await client.create_work_order({"title": object()})
        assert client.transport_errors == 0
