"""What the hub asks MaintainX about plant data beyond posting it: whether a status change is
there already, whether a 404 on readings names an unknown meter, and when a change started."""

from __future__ import annotations

from edge_agent.maintainx.errors import Misconfigured, NotFound
from edge_agent.wire.alert import WireError, wire_time_ns
from edge_agent.wire.plant import AssetStatusMessage


def unknown_meter(exc: Misconfigured) -> NotFound | None:
    """A 404 on ``POST /meterreadings`` that names a meter: a reading of a meter MaintainX
    does not have (a wrong ``maintainx_meter_id``), refused for good; the client takes a 404
    on a collection for a wrong base URL, which every other request would show too."""
    body = exc.body
    text = body.get("error") if isinstance(body, dict) else None
    if exc.status == 404 and isinstance(text, str) and "meter" in text.lower():
        return NotFound(f"POST /meterreadings: {text}"[:300], status=404, body=body)
    return None


def started_ns(message: AssetStatusMessage) -> int:
    try:
        return wire_time_ns(message.started_at, "started_at")
    except WireError:  # checked on the way in; the message's own time otherwise
        return message.time_ns
