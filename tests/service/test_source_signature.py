"""A reload keeps a running source exactly when its connection and its sensors are the same
(``service/wiring.source_signature``; compared as models since issue 16, not as dumps)."""

from __future__ import annotations

import copy
from typing import Any

from edge_agent.config.models import SiteConfig
from edge_agent.service.wiring import source_signature

DOCUMENT: dict[str, Any] = {
    "version": 1,
    "site": {"id": "plant-07"},
    "connections": {
        "plc1": {"protocol": "modbus-tcp", "host": "127.0.0.1", "port": 5020},
        "plc2": {"protocol": "modbus-tcp", "host": "127.0.0.1", "port": 5021},
    },
    "assets": {"P-101": {"maintainx_id": 1, "name": "Pump"}},
    "sensors": {
        "a": {"connection": "plc1", "register": {"table": "holding", "address": 1}},
        "b": {
            "connection": "plc1",
            "register": {"table": "holding", "address": 2, "type": "int16"},
            "scale": {"factor": 0.1},
        },
        "c": {"connection": "plc2", "register": {"table": "input", "address": 1}},
    },
    "rules": [{"id": "r", "asset": "P-101", "sensor": "a", "high": {"limit": 5}}],
}


def edited(edit: Any) -> SiteConfig:
    document = copy.deepcopy(DOCUMENT)
    edit(document)
    return SiteConfig.model_validate(document)


def same_source(old: SiteConfig, new: SiteConfig, connection: str = "plc1") -> bool:
    return bool(source_signature(old, connection) == source_signature(new, connection))


def test_the_same_file_keeps_every_source() -> None:
    old, new = edited(lambda d: None), edited(lambda d: None)
    assert same_source(old, new) and same_source(old, new, "plc2")


def test_a_rule_or_another_connections_sensor_keeps_the_source() -> None:
    old = edited(lambda d: None)
    new = edited(lambda d: d["rules"][0]["high"].update(limit=6))
    assert same_source(old, new)
    new = edited(lambda d: d["sensors"]["c"]["register"].update(address=9))
    assert same_source(old, new) and not same_source(old, new, "plc2")


def test_any_change_of_its_sensors_or_connection_restarts_the_source() -> None:
    old = edited(lambda d: None)
    edits = [
        lambda d: d["sensors"]["a"].update(unit="degC"),
        lambda d: d["sensors"]["a"]["register"].update(address=7),
        lambda d: d["sensors"]["b"]["scale"].update(factor=0.01),
        lambda d: d["sensors"]["b"]["register"].update(word_order="little"),
        lambda d: d["sensors"].pop("b"),
        lambda d: d["sensors"].update(
            e={"connection": "plc1", "register": {"table": "coil", "address": 3}}
        ),
        lambda d: d["sensors"]["c"].update(connection="plc1"),
        lambda d: d["connections"]["plc1"].update(port=5030),
    ]
    for edit in edits:
        assert not same_source(old, edited(edit))


def with_opcua(document: dict[str, Any]) -> None:
    document["connections"]["ua1"] = {"protocol": "opcua", "endpoint": "opc.tcp://127.0.0.1:4840"}
    document["sensors"]["t"] = {"connection": "ua1", "node": "ns=2;s=Line1.Text"}
    document["assets"]["P-102"] = {"maintainx_id": 2, "name": "Pump 2"}


def test_a_first_numeric_rule_on_an_opcua_sensor_restarts_its_source() -> None:
    """The OPC UA source reads a text value as bad for a sensor a rule compares as a
    number: the source that ran without that rule would pass the text on."""
    old = edited(with_opcua)

    def numeric_rule(document: dict[str, Any]) -> None:
        with_opcua(document)
        document["rules"].append(
            {"id": "t-high", "asset": "P-102", "sensor": "t", "high": {"limit": 5}}
        )

    new = edited(numeric_rule)
    assert not same_source(old, new, "ua1")
    # Modbus values are numbers whatever the rules say: its sources stay.
    assert same_source(old, new, "plc1") and same_source(old, new, "plc2")
    # Another limit on the same rule is not a new numeric sensor.
    newer = edited(lambda d: (numeric_rule(d), d["rules"][-1]["high"].update(limit=6)))
    assert same_source(new, newer, "ua1")
