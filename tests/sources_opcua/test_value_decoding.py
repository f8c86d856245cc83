"""OPC UA values that are not measurements: NaN and infinities are bad readings in the
source itself, so `edge-agent read` and `run` say the same (read showed `nan` as good)."""

from __future__ import annotations

import math

import pytest
from asyncua import ua

from edge_agent.config.models import Sensor
from edge_agent.readings import Quality

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
