"""DataValue → Reading: the inline path for the common case (Good, a float, a UTC source
time) gives exactly the reading the general path gives, for every kind of DataValue, and
it is the path taken for a DataValue as asyncua decodes it off the wire."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.ua_binary import from_binary, to_binary
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge_agent.config.models import Sensor
from edge_agent.sources.opcua.values import DataValues

from .conftest import connection, make_source

NOW_NS = 1_780_000_000_123_456_789
STATUSES = [
    StatusCodes.Good,
    StatusCodes.GoodClamped,
    StatusCodes.UncertainLastUsableValue,
    StatusCodes.BadSensorFailure,
    0xC0000000,
]

aware_utc = st.datetimes(
    min_value=datetime(1601, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)
).map(lambda moment: moment.replace(tzinfo=UTC))
timestamps = st.one_of(
    st.none(),
    st.just(datetime(1601, 1, 1, tzinfo=UTC)),  # OPC UA's "no time"
    st.just(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),  # a bad clock: still a time
    aware_utc,
    aware_utc.map(lambda moment: moment.replace(tzinfo=None)),  # naive: UTC
    st.datetimes(min_value=datetime(1700, 1, 1), max_value=datetime(9000, 1, 1)).map(
        lambda moment: moment.replace(tzinfo=timezone(timedelta(hours=5, minutes=30)))
    ),
)
values = st.one_of(
    st.floats(),  # NaN and ±inf included
    st.floats(min_value=-1e308, max_value=1e308),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.text(max_size=5),
    st.none(),
    st.just([1.0, 2.0]),
)
scales = st.one_of(
    st.none(),
    st.tuples(
        st.floats(allow_nan=False, allow_infinity=False),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
)


def epoch_ns(moment: datetime | None) -> int | None:
    """The conversion as it was before the inline path (the oracle)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment.year <= 1601:
        return None
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def data_values(sensors: dict[str, Sensor], numeric: frozenset[str]) -> DataValues:
    source = make_source(connection("opc.tcp://127.0.0.1:1/x/"), sensors)
    return DataValues("ua1", sensors, {}, numeric, source.stats)


def sensor(scale: tuple[float, float] | None) -> Sensor:
    data: dict[str, Any] = {"connection": "ua1", "node": "ns=2;s=X"}
    if scale is not None:
        data["scale"] = {"factor": scale[0], "offset": scale[1]}
    return Sensor.model_validate(data)


@settings(max_examples=400, deadline=None)
@given(
    value=values,
    status=st.one_of(st.none(), st.sampled_from(STATUSES)),
    source_time=timestamps,
    server_time=timestamps,
    scale=scales,
    numeric=st.booleans(),
)
@example(1e308, StatusCodes.Good, datetime(2026, 1, 1, tzinfo=UTC), None, (10.0, 0.0), True)
@example(math.nan, None, datetime(2026, 1, 1, tzinfo=UTC), None, None, True)
def test_the_inline_path_gives_the_general_paths_reading(
    value: Any,
    status: int | None,
    source_time: datetime | None,
    server_time: datetime | None,
    scale: tuple[float, float] | None,
    numeric: bool,
) -> None:
    converter = data_values({"s": sensor(scale)}, frozenset({"s"} if numeric else ()))
    variant = (
        ua.Variant(value, ua.VariantType.Double) if type(value) is float else ua.Variant(value)
    )
    dv = ua.DataValue(variant, SourceTimestamp=source_time, ServerTimestamp=server_time)
    dv.StatusCode = None if status is None else ua.StatusCode(status)
    fast = converter.reading_from("s", dv, NOW_NS)
    assert fast == converter.reading_from_any("s", dv, NOW_NS)
    # and both as the timestamps say: source, else server, else the local clock
    picked = epoch_ns(source_time)
    picked = epoch_ns(server_time) if picked is None else picked
    assert fast.source_time_ns == (NOW_NS if picked is None else picked)


@pytest.mark.parametrize("stamped", [True, False])  # a server's own, the simulator's bench
def test_a_value_off_the_wire_takes_the_inline_path(
    monkeypatch: pytest.MonkeyPatch, stamped: bool
) -> None:
    stamp = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC) if stamped else None
    sent = ua.DataValue(
        ua.Variant(61.5, ua.VariantType.Double), SourceTimestamp=stamp, ServerTimestamp=stamp
    )
    received = from_binary(ua.DataValue, Buffer(to_binary(ua.DataValue, sent)))
    converter = data_values({"s": sensor((2.0, 1.0))}, frozenset({"s"}))

    def general_path(*args: object) -> None:
        raise AssertionError("the general path was taken")

    monkeypatch.setattr(converter, "reading_from_any", general_path)
    reading = converter.reading_from("s", received, NOW_NS)
    assert (reading.value, reading.reason, reading.raw) == (124.0, None, "Good")
    assert reading.source_time_ns == (
        int(stamp.timestamp()) * 1_000_000_000 + 123_456_000 if stamp else NOW_NS
    )
