"""Sensor sources: one :class:`~edge_agent.interfaces.Source` per configured connection.

:func:`build_sources` imports a protocol's module only when a connection of that protocol
is configured (asyncua costs ≈ 0.4 s and ≈ 45 MiB to import; a Modbus-only gateway never
pays it).
"""

from __future__ import annotations

from pathlib import Path

from edge_agent.config.models import ModbusRtu, ModbusTcp, OpcUa, Sensor, SiteConfig
from edge_agent.interfaces import Source


def sensors_of(config: SiteConfig, connection: str) -> dict[str, Sensor]:
    """The sensors read through one connection, in file order."""
    return {sid: s for sid, s in config.sensors.items() if s.connection == connection}


def numeric_sensors_of(config: SiteConfig, connection: str) -> frozenset[str]:
    """The sensors of one OPC UA connection that a rule compares as numbers: its source
    reads a text value of theirs as bad (a limit never trips on text), so this set is part
    of what defines that source."""
    if not isinstance(config.connections.get(connection), OpcUa):
        return frozenset()
    return frozenset(
        rule.sensor
        for rule in config.rules
        if (rule.high or rule.low or rule.rate or rule.flatline)
        and rule.sensor in config.sensors
        and config.sensors[rule.sensor].connection == connection
    )


def build_sources(config: SiteConfig, base_dir: Path) -> list[Source]:
    """One source per connection that has sensors (no I/O happens here).

    ``base_dir`` is the site file's folder: relative certificate and secret paths are
    taken from it.
    """
    sources: list[Source] = []
    for name, connection in config.connections.items():
        sensors = sensors_of(config, name)
        if not sensors:
            continue
        if isinstance(connection, ModbusTcp | ModbusRtu):
            from edge_agent.sources.modbus.source import ModbusSource

            sources.append(ModbusSource(name, connection, sensors, config.defaults))
        elif isinstance(connection, OpcUa):
            from edge_agent.sources.opcua.source import OpcUaSource

            numeric = numeric_sensors_of(config, name)
            sources.append(
                OpcUaSource(name, connection, sensors, config.defaults, base_dir, numeric)
            )
    return sources
