"""Malformed publish responses through asyncua's own publish loop with the agent's lean
decoder in place: each is a counted error (asyncua's ``UaStructParsingError``, the loop
goes on), never a crash, and the next good response is delivered whole; a response the
lean decoder leaves to asyncua is counted and delivered as asyncua decodes it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from asyncua import ua
from asyncua.client.ua_session import UaSession
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_to_binary
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.sources.opcua import lean_publish
from edge_agent.sources.opcua.lean_decode import LeanDataChange


class _Server:
    """``UaClient._send_request`` as far as the publish loop sees it: one queued body per
    request, then nothing (the loop waits)."""

    def __init__(self, bodies: list[bytes]) -> None:
        self.bodies = list(bodies)
        self.requests = 0
        self.observer = SimpleNamespace()

    async def _send_request(
        self, request: Any, timeout: Any = None, message_type: Any = None
    ) -> Buffer:
        self.requests += 1
        if not self.bodies:
            await asyncio.Event().wait()
        return Buffer(self.bodies.pop(0))


def response_bytes(subscription_id: int, values: list[float], sequence: int) -> bytes:
    response = ua.PublishResponse()
    response.Parameters.SubscriptionId = subscription_id
    message = response.Parameters.NotificationMessage
    message.SequenceNumber = sequence
    message.NotificationData = [
        ua.DataChangeNotification(
            [
                ua.MonitoredItemNotification(h, ua.DataValue(ua.Variant(v, ua.VariantType.Double)))
                for h, v in enumerate(values, start=1)
            ]
        )
    ]
    return bytes(struct_to_binary(response))


async def serve(bodies: list[bytes], lean_for: Any = None) -> tuple[list[ua.PublishResult], Any]:
    """Run asyncua's publish loop over ``bodies`` with the lean decoder installed; what
    the subscription's callback got, and the counts."""
    server = _Server(bodies)
    session = UaSession(server)  # type: ignore[arg-type]
    counts = SimpleNamespace(publish_decode_errors=0, publish_decoded_by_asyncua=0)
    lean_publish.install(session, lean_for or (lambda subscription_id: True), counts)
    got: list[ua.PublishResult] = []
    session._subscription_callbacks[1] = got.append
    loop_task = asyncio.create_task(session._publish_loop())
    try:
        for _ in range(1000):
            if not server.bodies and server.requests > len(bodies):
                break
            await asyncio.sleep(0)
        assert not loop_task.done(), "the publish loop ended"
    finally:
        loop_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop_task
    return got, counts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(1, 400),
    noise=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=6),
)
def test_a_malformed_response_is_a_counted_error_and_the_next_arrives_whole(
    cut: int, noise: list[tuple[int, int]]
) -> None:
    good = response_bytes(1, [1.5, 2.5, 3.5], sequence=2)
    garbled = bytearray(response_bytes(1, [9.0, 9.0, 9.0], sequence=1))
    for at, byte in noise:
        garbled[at % len(garbled)] = byte
    del garbled[cut % len(garbled) or len(garbled) :]
    got, counts = asyncio.run(serve([bytes(garbled), good]))
    # the garbled one: an error counted, or decoded (by either decoder) as asyncua would
    assert counts.publish_decode_errors + len(got) >= 1
    last = got[-1]
    assert last.NotificationMessage.SequenceNumber == 2
    (notification,) = last.NotificationMessage.NotificationData
    assert isinstance(notification, LeanDataChange)
    assert notification.MonitoredItems == [
        (1, 1.5, None, None, 11),
        (2, 2.5, None, None, 11),
        (3, 3.5, None, None, 11),
    ]


def test_truncated_responses_are_counted_errors() -> None:
    good = response_bytes(1, [4.0], sequence=5)
    bodies = [good[:cut] for cut in (0, 3, 20, len(good) - 1)] + [good]
    got, counts = asyncio.run(serve(bodies))
    assert counts.publish_decode_errors == 4
    assert [result.NotificationMessage.SequenceNumber for result in got] == [5]


def test_a_response_left_to_asyncua_is_counted_and_delivered_as_asyncua_decodes_it() -> None:
    got, counts = asyncio.run(
        serve([response_bytes(1, [7.0], sequence=3)], lean_for=lambda subscription_id: False)
    )
    assert (counts.publish_decode_errors, counts.publish_decoded_by_asyncua) == (0, 1)
    (notification,) = got[0].NotificationMessage.NotificationData
    assert type(notification) is ua.DataChangeNotification
    assert notification.MonitoredItems[0].Value.Value.Value == 7.0
