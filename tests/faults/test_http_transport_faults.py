"""The HTTP library's own failures on a connection torn down mid-way are link faults.

Found by the fault campaign (MaintainX restarting): anyio asked a socket the connection had
already lost for its peer and raised ``AttributeError`` out of ``httpx``; the hub took it for
a poison message, answered the site ``rejected``, and the alarm ended in the dead letters
with no work order. The transport below is the real one to the emulator, made to fail that
way on chosen requests (the race itself cannot be timed on purpose)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from edge_agent.maintainx.errors import RETRYABLE, Misconfigured, OutcomeUnknown, TransientError
from edge_agent.outbox.store import Outbox
from edge_agent.simulators.maintainx import Emulator
from tests.maintainx.conftest import (  # noqa: F401  fixtures
    Start,
    alert,
    asset_id,
    emulator,
    make_client,
    outbox,
    start,
    wait_until,
)


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


class Raising(httpx.AsyncHTTPTransport):
    """Every request fails with ``error``, nothing leaves."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        raise self.error


async def test_a_cancel_during_send_stays_a_cancel(emulator: Emulator) -> None:  # noqa: F811
    async with make_client(emulator, transport=Raising(asyncio.CancelledError())) as client:
        with pytest.raises(asyncio.CancelledError):
            await client.create_work_order({"title": "x"})

    class Slow(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(30)
            raise AssertionError

    async with make_client(emulator, transport=Slow()) as client:
        task = asyncio.create_task(client.create_work_order({"title": "x"}))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.transport_errors == 0


async def test_a_closed_client_sent_nothing(emulator: Emulator) -> None:  # noqa: F811
    """The hub closes a site's clients on a key rotation while a request may be about to
    go: nothing left, so no settle hold and lookup as for a request that may have landed."""
    client = make_client(emulator)
    await client.aclose()
    with pytest.raises(TransientError):
        await client.create_work_order({"title": "x"})


@pytest.mark.parametrize("error", [TypeError("unhashable"), KeyError("k"), AssertionError("x")])
async def test_the_same_transport_failure_every_time_is_a_bug_raised_with_its_traceback(
    emulator: Emulator,  # noqa: F811
    error: Exception,
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = Raising(error)
    outcomes: list[BaseException] = []
    async with make_client(emulator, transport=transport) as client:
        for _ in range(6):
            with pytest.raises(Exception) as info:
                await client.create_work_order({"title": "x"})
            outcomes.append(info.value)
    assert transport.calls == 6
    retried = [isinstance(e, RETRYABLE) for e in outcomes]
    assert retried == [True, True, True, False, False, False]
    assert all(type(e) is type(error) for e in outcomes[3:])  # raised as it came
    assert any(r.exc_info for r in caplog.records), "the traceback is logged"


async def test_an_api_key_http_cannot_carry_is_a_misconfiguration(
    emulator: Emulator,  # noqa: F811
) -> None:
    """A key from an environment file saved with CRLF ends in a carriage return: h11
    refuses the header before sending. No retry can succeed: hold, never a lookup loop."""
    async with make_client(emulator, key="site-key-0123456789abcdef\r") as client:
        with pytest.raises(Misconfigured) as info:
            await client.create_work_order({"title": "x"})
    assert "0123456789abcdef" not in str(info.value)
    assert emulator.work_orders == []


REAL_SEND = httpx.AsyncHTTPTransport.handle_async_request


async def buggy_for_one_alert(
    self: httpx.AsyncHTTPTransport, request: httpx.Request
) -> httpx.Response:
    """A bug only one alert's request meets, every time (nothing leaves)."""
    if b"POISON" in request.content:
        raise TypeError("a bug tied to this request")
    return await REAL_SEND(self, request)


async def test_direct_mode_a_bug_in_send_for_one_alert_does_not_stop_the_others(
    emulator: Emulator,  # noqa: F811
    asset_id: int,  # noqa: F811
    outbox: Outbox,  # noqa: F811
    start: Start,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The forwarder's policy for bugs (traceback, bounded attempts, dead letters) still
    applies once the same failure repeats; the alert behind it is delivered."""
    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", buggy_for_one_alert)
    outbox.put_many([alert(1, asset_mx=asset_id, title="POISON"), alert(2, asset_mx=asset_id)])
    forwarder = start(emulator.url, timeout="200ms")
    await wait_until(lambda: forwarder.status.sent == 1, timeout_s=60.0)
    assert outbox.stats().dead == 1
    assert [w["title"] for w in emulator.work_orders] == ["P-101 bearing temperature high"]
