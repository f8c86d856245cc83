"""Forwarders deliver outbox items to one destination: an MQTT broker or MaintainX.

:func:`build_forwarder` picks the one the site file's ``forwarding.mode`` names; each
module is imported only when chosen, so a site that uses MQTT never imports httpx.
:func:`work_order_tracker` is the agent's side of the hub's answers (MQTT mode only): pass
it to :func:`build_forwarder`, which listens to those answers on the forwarder's connection.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.config.models import SiteConfig
from edge_agent.errors import EdgeAgentError
from edge_agent.interfaces import Forwarder

if TYPE_CHECKING:
    from edge_agent.common.mqtt_link import Message
    from edge_agent.forwarders.workorder_status import WorkOrderTracker
    from edge_agent.outbox.store import Outbox

__all__ = ["ForwarderConfigError", "build_forwarder", "work_order_tracker"]

log = logging.getLogger(__name__)


class ForwarderConfigError(EdgeAgentError):
    """The site's ``forwarding`` section does not name a usable forwarder."""


def work_order_tracker(config: SiteConfig, state_dir: Path) -> WorkOrderTracker | None:
    """Which work order each rule has open: fed by the hub's answers over MQTT, or in
    direct mode by the MaintainX forwarder and its status polls; None without forwarding."""
    forwarding = config.forwarding
    if forwarding is None:
        return None
    from edge_agent.forwarders.workorder_status import WorkOrderTracker

    if forwarding.mode == "maintainx" and forwarding.maintainx is not None:
        return WorkOrderTracker(state_dir, config.site.id)
    if forwarding.mode != "mqtt" or forwarding.mqtt is None:
        return None
    return WorkOrderTracker(state_dir, config.site.id, forwarding.mqtt.topic_prefix)


def build_forwarder(
    config: SiteConfig,
    outbox: Outbox,
    state_dir: Path,
    base_dir: Path,
    *,
    work_orders: WorkOrderTracker | None = None,
) -> Forwarder:
    """The forwarder for ``config.forwarding.mode`` (construction does no I/O). With
    ``work_orders``, the MQTT forwarder also listens to the hub's answers and work-order
    statuses for this site and feeds them to it; the MaintainX forwarder records its work
    orders there and polls their statuses."""
    forwarding = config.forwarding
    if forwarding is None:
        raise ForwarderConfigError("the site file has no forwarding section")
    if forwarding.mode == "mqtt":
        if forwarding.mqtt is None:
            raise ForwarderConfigError("forwarding.mode is mqtt but forwarding.mqtt is missing")
        from edge_agent.forwarders.mqtt import MqttForwarder

        site = config.site.id
        if work_orders is None:
            return MqttForwarder(forwarding.mqtt, site, outbox, base_dir)
        from edge_agent.forwarders.workorder_status import status_topics

        tracker = work_orders

        def on_message(message: Message) -> None:
            try:
                tracker.on_message(message.topic, message.payload)
            except OSError as exc:  # the map could not be saved; the next message retries
                log.error("Work order map not saved.", extra={"error": str(exc)})

        prefix = forwarding.mqtt.topic_prefix
        return MqttForwarder(
            forwarding.mqtt,
            site,
            outbox,
            base_dir,
            subscriptions=[(topic, 1) for topic in status_topics(prefix, site)],
            on_message=on_message,
        )
    if forwarding.mode == "maintainx":
        if forwarding.maintainx is None:
            raise ForwarderConfigError(
                "forwarding.mode is maintainx but forwarding.maintainx is missing"
            )
        from edge_agent.forwarders.maintainx.forwarder import MaintainXForwarder

        return MaintainXForwarder(
            forwarding.maintainx, config, outbox, state_dir, base_dir, work_orders=work_orders
        )
    raise ForwarderConfigError(f"unknown forwarding mode {forwarding.mode!r}")
