"""Rate limits: a 429 is waited out for the advertised reset; once the limit is known the
client paces itself so that the server never answers 429."""

from __future__ import annotations

from edge_agent.simulators.maintainx import Emulator
from tests.maintainx.conftest import SITE_KEY, make_client


async def test_429_waits_the_advertised_reset_then_succeeds() -> None:
    with Emulator(keys={SITE_KEY: [1]}, rate_limiting=False) as mx:
        mx.faults.force_429(0.5)  # advertised as Reset: 1 (whole seconds, rounded up)
        async with make_client(mx) as client:
            work_order_id = await client.create_work_order({"title": "after the burst"})
        records = mx.requests
    statuses = [r.status for r in records]
    assert statuses[0] == 429 and statuses[-1] == 200
    assert statuses.count(200) == 1
    assert [w["id"] for w in mx.work_orders] == [work_order_id]
    first_429, success = records[0], records[-1]
    assert success.started - first_429.started >= 1.0  # the reset it advertised, not less
    assert client.rate_limited == statuses.count(429)


async def test_no_429_once_the_limit_is_known() -> None:
    # 6 requests per 1 s window; the client is told nothing in advance (it assumes 10 000/min).
    with Emulator(keys={SITE_KEY: [1]}, rate_limit=6, rate_window_s=1.0) as mx:
        async with make_client(mx, rate_limit_per_min=10_000) as client:
            for n in range(15):
                await client.create_work_order({"title": f"WO {n}"})
            waits = client.pacer.waits
        records = mx.requests
    assert [r.status for r in records] == [200] * 15
    assert len(mx.work_orders) == 15
    assert waits > 0  # it did slow down: 15 requests needed three windows
    # It kept one request in reserve: the server never reported an exhausted window.
    assert min(int(r.response_headers["X-Rate-Limit-Remaining"]) for r in records) >= 1


async def test_unpaced_client_would_be_refused() -> None:
    """The emulator really enforces its limit (so the test above can fail)."""
    import httpx

    with Emulator(keys={SITE_KEY: [1]}, rate_limit=3, rate_window_s=30.0) as mx:
        headers = {"Authorization": f"Bearer {SITE_KEY}"}
        async with httpx.AsyncClient(base_url=mx.url + "/", headers=headers) as raw:
            answers = [await raw.get("workorders") for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert answers[2].headers["x-rate-limit-remaining"] == "0"
    assert int(answers[3].headers["x-rate-limit-reset"]) >= 1
    assert answers[3].json() == {"error": "Too many requests"}


async def test_a_client_with_a_share_leaves_the_rest_of_the_window() -> None:
    """``rate_share=0.4`` of 10 per window: the key never drops below 6 left (for the key's
    other clients), whatever this client has to send."""
    with Emulator(keys={SITE_KEY: [1]}, rate_limit=10, rate_window_s=1.0) as mx:
        async with make_client(mx, rate_limit_per_min=10_000, rate_share=0.4) as client:
            for n in range(9):
                await client.create_work_order({"title": f"WO {n}"})
            waits = client.pacer.waits
        records = mx.requests
    assert [r.status for r in records] == [200] * 9
    assert waits > 0  # 9 requests at 4 a window: it waited for new windows
    assert min(int(r.response_headers["X-Rate-Limit-Remaining"]) for r in records) >= 6


def test_a_share_outside_0_1_is_refused() -> None:
    import pytest

    from edge_agent.maintainx.ratelimit import RatePacer

    for share in (0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError):
            RatePacer(100, share=share)
