"""The session's Publish call with the lean decoder (:mod:`.lean_decode`) in place of
asyncua's: ``UaSession.publish`` as asyncua 2.x writes it, decoding through
:func:`~.lean_decode.decode_publish_response`.

asyncua's publish loop calls ``self.publish(acks)``; an instance attribute shadows the
method, so the loop (already running or started later) calls this one. A response the
lean decoder does not take is decoded by asyncua, counted; one neither can decode raises
asyncua's ``UaStructParsingError`` as its own ``publish`` does (the loop goes on), counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from asyncua import ua
from asyncua.client.ua_session import UaSession
from asyncua.ua.uaerrors import UaStructParsingError

from edge_agent.sources.opcua.lean_decode import decode_publish_response
from edge_agent.sources.opcua.logger import log


class DecodeCounts(Protocol):
    """Where the counts go (the source)."""

    #: Publish responses neither decoder could read (asyncua's loop skips them).
    publish_decode_errors: int
    #: Publish responses the lean decoder left to asyncua's.
    publish_decoded_by_asyncua: int


def install(session: UaSession, lean_for: Callable[[int], bool], counts: DecodeCounts) -> None:
    """Make ``session``'s publish loop decode its responses with the lean decoder for the
    subscriptions ``lean_for`` accepts (their callbacks take ``LeanDataChange``)."""
    if not callable(getattr(session, "_send_request", None)):
        # Private to asyncua 2.x's session: fail loudly at start if it moves.
        raise RuntimeError("asyncua's session has no _send_request to publish with")

    async def publish(acks: list[ua.SubscriptionAcknowledgement]) -> ua.PublishResponse:
        request = ua.PublishRequest()
        request.Parameters.SubscriptionAcknowledgements = acks if acks else []
        data = await session._send_request(request, timeout=0)
        try:
            response, lean = decode_publish_response(bytes(data), lean_for)
        except Exception as exc:
            counts.publish_decode_errors += 1
            log.exception("OPC UA publish response could not be decoded.")
            raise UaStructParsingError from exc
        if not lean:
            counts.publish_decoded_by_asyncua += 1
        return response

    session.publish = publish  # type: ignore[method-assign]
