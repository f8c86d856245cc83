"""The MQTT sink for plant data: the plant-data outbox's meter readings and asset status
changes on ``{prefix}/{site}/meters`` and ``.../assets`` at QoS 1.

It is :class:`~edge_agent.forwarders.mqtt.MqttForwarder` with a :class:`PlantRoute`: the same
delivery loop, the same confirmation by the hub (an item leaves the outbox when the hub's
result for its ``id`` arrives, on ``{prefix}/{site}/results/plant``; without one it is
published again, same bytes), the same hold while every hub replica is offline. What differs:

- each item goes as it is stored (the outbox holds the wire message, ``wire/plant.py``), on
  the topic of its schema;
- readings travel side by side; the status changes of one asset go one at a time, the next
  only after the hub confirmed the previous (:func:`edge_agent.wire.plant_keys.plant_ids`);
- it is a second connection of the site (client id ``…-plant``) that announces nothing: the
  site's birth and last will stay the alert forwarder's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_agent.config.models import Mqtt
from edge_agent.forwarders.mqtt import MqttForwarder
from edge_agent.outbox.store import Outbox
from edge_agent.wire import topics
from edge_agent.wire.plant import ASSET_STATUS_SCHEMA
from edge_agent.wire.plant_keys import plant_ids

__all__ = ["PlantRoute", "plant_mqtt_forwarder"]

CLIENT_SUFFIX = "-plant"


class PlantRoute:
    """Plant data: readings on ``meters``, status changes on ``assets``."""

    what = "plant data item"
    client_suffix = CLIENT_SUFFIX
    announces = False

    def __init__(self, prefix: str, site_id: str) -> None:
        self.meters_topic = topics.meters(prefix, site_id)
        self.assets_topic = topics.assets(prefix, site_id)
        self.results_topic = topics.plant_results(prefix, site_id)

    def topic_for(self, payload: Any) -> str:
        if isinstance(payload, dict) and payload.get("schema") == ASSET_STATUS_SCHEMA:
            return self.assets_topic
        return self.meters_topic

    def ids(self, item_id: int, payload: Any) -> tuple[str, str] | None:
        return plant_ids(payload)


def plant_mqtt_forwarder(
    config: Mqtt, site_id: str, outbox: Outbox, base_dir: Path, **kwargs: Any
) -> MqttForwarder:
    """The forwarder of the plant-data outbox in MQTT mode (no I/O until ``run``)."""
    return MqttForwarder(
        config, site_id, outbox, base_dir, route=PlantRoute(config.topic_prefix, site_id), **kwargs
    )
