"""OPC UA values that are not measurements: NaN and infinities are bad readings in the
source itself, so `edge-agent read` and `run` say the same (read showed `nan` as good)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
from asyncua import ua

from edge_agent.config.models import Defaults, Sensor, SiteConfig
from edge_agent.readings import Quality
from edge_agent.sources import build_sources
from edge_agent.sources.opcua.source import OpcUaSource

from .conftest import connection, make_source, plant_sensors


@pytest.mark.parametrize(
    ("sensor_id", "raw", "shown"),
    [
        ("p101_bearing_temp", math.nan, "nan"),
        ("p101_bearing_temp", math.inf, "inf"),
        ("p101_bearing_temp", -math.inf, "-inf"),
        ("scaled", 1e308, "inf"),  # finite on the wire, infinite once scaled
    ],
)
def test_non_finite_values_are_bad(sensor_id: str, raw: float, shown: str) -> None:
    source = make_source(
        connection("opc.tcp://127.0.0.1:1/x/"),
        plant_sensors()
        | {
            "scaled": Sensor.model_validate(
                {"connection": "ua1", "node": "ns=2;s=X", "scale": {"factor": 10.0}}
            )
        },
    )
    dv = ua.DataValue(ua.Variant(raw, ua.VariantType.Double))
    reading = source.reading_from(sensor_id, dv, 5)
    assert (reading.value, reading.quality) == (None, Quality.BAD)
    assert reading.reason == f"not a finite number ({shown})"


def test_text_under_a_numeric_rule_is_bad_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A String node holding "99.5" under `high:`: the limit never trips on text. The
    reading is bad, every time counted, and the log says so once per sensor."""
    source = OpcUaSource(
        "ua1",
        connection("opc.tcp://127.0.0.1:1/x/"),
        plant_sensors(),
        Defaults(),
        Path(),
        frozenset({"p101_bearing_temp"}),
    )
    dv = ua.DataValue(ua.Variant("99.5", ua.VariantType.String))
    with caplog.at_level(logging.ERROR, logger="edge_agent.sources.opcua.source"):
        readings = [source.reading_from("p101_bearing_temp", dv, 5) for _ in range(3)]
    assert {(r.value, r.quality) for r in readings} == {(None, Quality.BAD)}
    assert readings[0].reason == ("text '99.5' where a rule needs a number (the node is a String)")
    assert source.text_where_number == 3 and source.stats.read_errors == 3
    logged = [r for r in caplog.records if "holds text where a rule needs a number" in r.message]
    assert len(logged) == 1 and logged[0].sensor == "p101_bearing_temp"


def test_text_without_a_numeric_rule_stays_text() -> None:
    source = make_source(connection("opc.tcp://127.0.0.1:1/x/"))
    dv = ua.DataValue(ua.Variant("RUNNING", ua.VariantType.String))
    reading = source.reading_from("p101_bearing_temp", dv, 5)
    assert (reading.value, reading.quality) == ("RUNNING", Quality.GOOD)


def test_build_sources_tells_the_source_which_sensors_rules_compare_as_numbers() -> None:
    config = SiteConfig.model_validate(
        {
            "version": 1,
            "site": {"id": "s"},
            "connections": {"ua1": {"protocol": "opcua", "endpoint": "opc.tcp://127.0.0.1:1/x/"}},
            "assets": {"A": {"name": "A"}},
            "sensors": {
                "temp": {"connection": "ua1", "node": "ns=2;s=T"},
                "state": {"connection": "ua1", "node": "ns=2;s=S"},
            },
            "rules": [
                {"id": "hot", "asset": "A", "sensor": "temp", "high": {"limit": 90}},
                {"id": "stopped", "asset": "A", "sensor": "state", "equals": "STOPPED"},
            ],
        }
    )
    (source,) = build_sources(config, Path())
    assert isinstance(source, OpcUaSource)
    dv = ua.DataValue(ua.Variant("99.5", ua.VariantType.String))
    assert source.reading_from("temp", dv, 5).quality is Quality.BAD
    assert source.reading_from("state", dv, 5).value == "99.5"
