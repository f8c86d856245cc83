"""The MQTT link's errors (:mod:`edge_agent.common.mqtt_link`), translated from paho's and
ssl's at the boundary::

    MqttError
    ├── MqttConfigError      the TLS files or credentials cannot be loaded (configuration)
    ├── MqttDisconnected     the connection dropped before the broker acknowledged
    └── MqttPublishRefused   an MQTT v5 failure reason code (e.g. 0x87 not authorised)
"""

from __future__ import annotations

from edge_agent.errors import EdgeAgentError


class MqttError(EdgeAgentError):
    """Base of the MQTT link's errors."""


class MqttConfigError(MqttError):
    """The TLS files or the credentials cannot be loaded: a configuration problem."""


class MqttDisconnected(MqttError):
    """The connection dropped before the broker acknowledged the message."""


class MqttPublishRefused(MqttError):
    """The broker answered with an MQTT v5 failure reason code (e.g. 0x87 not authorised)."""

    def __init__(self, reason: str, code: int) -> None:
        super().__init__(f"broker refused the publish: {reason} (0x{code:02x})")
        self.reason = reason
        self.code = code
