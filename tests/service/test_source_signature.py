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
