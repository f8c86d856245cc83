"""What an MQTT forwarder publishes where, and how the hub's results name it: a
:class:`Route`. Alert events (:class:`AlertRoute`) and plant data
(:class:`~edge_agent.forwarders.plant_mqtt.PlantRoute`) each have one."""

from __future__ import annotations

from typing import Any, Protocol

from edge_agent.forwarders.hub_tracking import ids_of
from edge_agent.wire import topics


class Route(Protocol):
    """What a forwarder publishes where, and how the hub's results name it: alert events
    (:class:`AlertRoute`, the default) or plant data
    (:mod:`edge_agent.forwarders.plant_mqtt`). One forwarder, one route."""

    what: str
    """What an item is, in log lines (``alert``)."""
    results_topic: str
    """Where the hub confirms them (``confirm: hub``)."""
    client_suffix: str
    """Added to the client id: a second connection of the same site must not take over the
    first one's session."""
    announces: bool
    """Publish the site's birth and last will (one connection per site does)."""

    def topic_for(self, payload: Any) -> str:
        """Where ``payload`` is published."""
        ...

    def ids(self, item_id: int, payload: Any) -> tuple[str, str] | None:
        """(event id, order key) as the hub's result names them: items of one order key
        go one at a time. None: the hub could never confirm it (dead letter)."""
        ...


class AlertRoute:
    """Alert events on ``{prefix}/{site}/alerts``; in order per alert."""

    what = "alert"
    client_suffix = ""
    announces = True

    def __init__(self, prefix: str, site_id: str) -> None:
        self.topic = topics.alerts(prefix, site_id)
        self.results_topic = topics.results(prefix, site_id)

    def topic_for(self, payload: Any) -> str:
        return self.topic

    def ids(self, item_id: int, payload: Any) -> tuple[str, str] | None:
        if not isinstance(payload.get("event_id"), str):
            return None
        return ids_of(item_id, payload)
