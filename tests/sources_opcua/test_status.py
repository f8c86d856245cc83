"""Status codes → quality, timestamps → ns, DataValue → Reading (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asyncua import ua
from asyncua.ua.status_codes import StatusCodes

from edge_agent.config.models import Sensor
from edge_agent.readings import Quality
from edge_agent.sources.opcua.status import datetime_to_ns, pick_time_ns, quality_of

from .conftest import connection, make_source, plant_sensors


def test_severity_bits_decide_quality() -> None:
    assert quality_of(StatusCodes.Good) is Quality.GOOD
    assert quality_of(StatusCodes.GoodClamped) is Quality.GOOD
    assert quality_of(StatusCodes.UncertainLastUsableValue) is Quality.UNCERTAIN
    assert quality_of(StatusCodes.UncertainSensorNotAccurate) is Quality.UNCERTAIN
    assert quality_of(StatusCodes.BadSensorFailure) is Quality.BAD
    assert quality_of(StatusCodes.BadNodeIdUnknown) is Quality.BAD
    assert quality_of(0xC0000000) is Quality.BAD  # reserved severity: treated as bad


def test_timestamps_become_epoch_nanoseconds() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    expected = int(moment.timestamp()) * 1_000_000_000 + 678_901_000
    assert datetime_to_ns(moment) == expected
    assert datetime_to_ns(moment.replace(tzinfo=None)) == expected  # naive means UTC
    assert datetime_to_ns(datetime(1601, 1, 1, tzinfo=UTC)) is None  # OPC UA "no time"
    assert datetime_to_ns(None) is None


def test_source_then_server_then_local_time() -> None:
    source = datetime(2026, 1, 1, tzinfo=UTC)
    server = source + timedelta(seconds=1)
    assert pick_time_ns(source, server, 7) == datetime_to_ns(source)
    assert pick_time_ns(None, server, 7) == datetime_to_ns(server)
    assert pick_time_ns(None, None, 7) == 7


def test_datavalue_to_reading() -> None:
    source = make_source(
        connection("opc.tcp://127.0.0.1:1/x/"),
        plant_sensors()
        | {
            "scaled": Sensor.model_validate(
                {"connection": "ua1", "node": "ns=2;s=X", "scale": {"factor": 2.0, "offset": 1.0}}
            )
        },
    )
    stamp = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    good = ua.DataValue(ua.Variant(61.5, ua.VariantType.Double), SourceTimestamp=stamp)
    reading = source.reading_from("p101_bearing_temp", good, 5)
    assert (reading.value, reading.quality, reading.reason) == (61.5, Quality.GOOD, None)
    assert reading.source_time_ns == datetime_to_ns(stamp)

    failed = ua.DataValue(
        ua.Variant(61.5, ua.VariantType.Double),
        StatusCode=ua.StatusCode(StatusCodes.BadSensorFailure),
    )
    reading = source.reading_from("p101_bearing_temp", failed, 5)
    assert (reading.value, reading.quality, reading.reason) == (
        None,
        Quality.BAD,
        "BadSensorFailure",
    )
    assert reading.source_time_ns == 5  # no timestamps at all: local time

    doubtful = ua.DataValue(
        ua.Variant(3.0, ua.VariantType.Double),
        StatusCode=ua.StatusCode(StatusCodes.UncertainLastUsableValue),
    )
    reading = source.reading_from("p101_bearing_temp", doubtful, 5)
    assert (reading.value, reading.quality) == (3.0, Quality.UNCERTAIN)
    assert reading.reason == "UncertainLastUsableValue"

    assert source.reading_from("scaled", good, 5).value == 124.0

    empty = ua.DataValue(ua.Variant())
    reading = source.reading_from("p101_bearing_temp", empty, 5)
    assert (reading.quality, reading.reason) == (Quality.BAD, "no value")

    array = ua.DataValue(ua.Variant([1.0, 2.0], ua.VariantType.Double))
    reading = source.reading_from("p101_bearing_temp", array, 5)
    assert reading.quality is Quality.BAD
    assert reading.reason is not None and "unsupported value type" in reading.reason
