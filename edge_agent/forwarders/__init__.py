"""Forwarders deliver outbox items to one destination: an MQTT broker or MaintainX.

:func:`build_forwarder` picks the one the site file's ``forwarding.mode`` names; each
module is imported only when chosen, so a site that uses MQTT never imports httpx.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.config.models import SiteConfig
from edge_agent.errors import EdgeAgentError
from edge_agent.interfaces import Forwarder

if TYPE_CHECKING:
    from edge_agent.outbox.store import Outbox

__all__ = ["ForwarderConfigError", "build_forwarder"]


class ForwarderConfigError(EdgeAgentError):
    """The site's ``forwarding`` section does not name a usable forwarder."""


def build_forwarder(
    config: SiteConfig, outbox: Outbox, state_dir: Path, base_dir: Path
) -> Forwarder:
    """The forwarder for ``config.forwarding.mode`` (construction does no I/O)."""
    forwarding = config.forwarding
    if forwarding is None:
        raise ForwarderConfigError("the site file has no forwarding section")
    if forwarding.mode == "mqtt":
        if forwarding.mqtt is None:
            raise ForwarderConfigError("forwarding.mode is mqtt but forwarding.mqtt is missing")
        from edge_agent.forwarders.mqtt import MqttForwarder

        return MqttForwarder(forwarding.mqtt, config.site.id, outbox, base_dir)
    if forwarding.mode == "maintainx":
        if forwarding.maintainx is None:
            raise ForwarderConfigError(
                "forwarding.mode is maintainx but forwarding.maintainx is missing"
            )
        from edge_agent.forwarders.maintainx.forwarder import MaintainXForwarder

        return MaintainXForwarder(forwarding.maintainx, config, outbox, state_dir, base_dir)
    raise ForwarderConfigError(f"unknown forwarding mode {forwarding.mode!r}")
