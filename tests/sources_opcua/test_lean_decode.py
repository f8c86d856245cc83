"""The lean PublishResponse decoder gives exactly what asyncua's decoder gives (a lean item
stands for the DataValue asyncua makes of it), or leaves the response to asyncua; on
truncated or garbage bytes it never gives a value asyncua would not; and a lean item's
reading is the reading of asyncua's DataValue."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from asyncua import ua
from asyncua.common.utils import Buffer, NotEnoughData
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge_agent.config.models import Sensor
from edge_agent.sources.opcua.lean_decode import (
    LeanDataChange,
    StrictBuffer,
    as_data_value,
    decode_publish_response,
)
from edge_agent.sources.opcua.status import datetime_to_ns, ticks_to_ns
from edge_agent.sources.opcua.values import DataValues

from .conftest import connection, make_source

NOW_NS = 1_780_000_000_123_456_789
VT = ua.VariantType
INT_RANGES = {
    VT.SByte: (-(2**7), 2**7 - 1),
    VT.Byte: (0, 2**8 - 1),
    VT.Int16: (-(2**15), 2**15 - 1),
    VT.UInt16: (0, 2**16 - 1),
    VT.Int32: (-(2**31), 2**31 - 1),
    VT.UInt32: (0, 2**32 - 1),
    VT.Int64: (-(2**63), 2**63 - 1),
    VT.UInt64: (0, 2**64 - 1),
}
STATUSES = [
    StatusCodes.Good,
    StatusCodes.GoodClamped,
    StatusCodes.UncertainLastUsableValue,
    StatusCodes.BadSensorFailure,
    0xC0000000,
]

scalar_variants = st.one_of(
    st.booleans().map(lambda v: ua.Variant(v, VT.Boolean)),
    *[
        st.integers(low, high).map(lambda v, t=vtype: ua.Variant(v, t))
        for vtype, (low, high) in INT_RANGES.items()
    ],
    st.floats(width=32).map(lambda v: ua.Variant(v, VT.Float)),  # NaN, ±inf, -0.0 included
    st.floats().map(lambda v: ua.Variant(v, VT.Double)),
)
other_variants = st.one_of(
    st.text(max_size=4).map(lambda v: ua.Variant(v, VT.String)),
    st.binary(max_size=4).map(lambda v: ua.Variant(v, VT.ByteString)),
    st.lists(st.floats(), max_size=3).map(lambda v: ua.Variant(v, VT.Double, is_array=True)),
    st.just(ua.Variant()),  # Null
)
timestamps = st.one_of(
    st.none(),
    st.just(datetime(1601, 1, 1, tzinfo=UTC)),
    st.just(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    st.datetimes(min_value=datetime(1601, 1, 1), max_value=datetime(9999, 12, 31)).map(
        lambda moment: moment.replace(tzinfo=UTC)
    ),
)


@st.composite
def data_values(draw: st.DrawFn, common: bool = False) -> ua.DataValue:
    variant = draw(scalar_variants if common else st.one_of(scalar_variants, other_variants))
    dv = ua.DataValue(variant, SourceTimestamp=draw(timestamps), ServerTimestamp=draw(timestamps))
    if common:
        dv.StatusCode = draw(st.sampled_from([None, ua.StatusCode(0)]))
    else:
        status = draw(st.one_of(st.none(), st.sampled_from(STATUSES)))
        dv.StatusCode = None if status is None else ua.StatusCode(status)
        if draw(st.integers(0, 9)) == 0:  # picoseconds: asyncua's decoder
            dv.SourcePicoseconds = draw(st.integers(0, 65535))
    return dv


def item_lists(common: bool) -> st.SearchStrategy[list[ua.MonitoredItemNotification]]:
    return st.lists(
        st.builds(
            ua.MonitoredItemNotification,
            ClientHandle=st.integers(0, 2**32 - 1),
            Value=data_values(common),
        ),
        max_size=12,
    )


@st.composite
def responses(draw: st.DrawFn, common: bool = False) -> ua.PublishResponse:
    response = ua.PublishResponse()
    result = response.Parameters
    result.SubscriptionId = 7
    result.AvailableSequenceNumbers = draw(st.lists(st.integers(0, 2**32 - 1), max_size=3))
    result.MoreNotifications = draw(st.booleans())
    message = result.NotificationMessage
    message.SequenceNumber = draw(st.integers(0, 2**32 - 1))
    same = st.sampled_from([VT.Double, VT.Float, VT.Int32, VT.Boolean])
    notifications: list[Any] = []
    for kind in draw(st.lists(st.integers(0, 3 if not common else 1), max_size=3)):
        if kind == 0:
            notifications.append(ua.DataChangeNotification(MonitoredItems=draw(item_lists(common))))
        elif kind == 1:  # one layout throughout (a server's usual response)
            vtype = draw(same)
            value = {VT.Boolean: True, VT.Int32: -5}.get(vtype, 2.5)
            stamp = draw(timestamps)
            items = [
                ua.MonitoredItemNotification(
                    h, ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=stamp)
                )
                for h in range(draw(st.integers(1, 20)))
            ]
            notifications.append(ua.DataChangeNotification(MonitoredItems=items))
        elif kind == 2:
            notifications.append(
                ua.StatusChangeNotification(Status=ua.StatusCode(draw(st.sampled_from(STATUSES))))
            )
        else:
            diagnostics = [ua.DiagnosticInfo(SymbolicId=3)]
            items = draw(item_lists(False))
            notifications.append(ua.DataChangeNotification(items, diagnostics))
    message.NotificationData = notifications
    result.Results = [
        ua.StatusCode(s) for s in draw(st.lists(st.sampled_from(STATUSES), max_size=2))
    ]
    return response


def materialised(response: ua.PublishResponse) -> ua.PublishResponse:
    """The lean response with each lean item as the DataValue asyncua makes of it."""
    data = response.Parameters.NotificationMessage.NotificationData
    for index, notification in enumerate(data):
        if isinstance(notification, LeanDataChange):
            items = [
                ua.MonitoredItemNotification(item[0], as_data_value(item))
                if type(item) is tuple
                else item
                for item in notification.MonitoredItems
            ]
            data[index] = ua.DataChangeNotification(items, notification.DiagnosticInfos)
    return response


def assert_same(lean: ua.PublishResponse, reference: ua.PublishResponse) -> None:
    assert lean.TypeId == reference.TypeId
    lean.TypeId = reference.TypeId
    # repr: NaN is NaN there (== would call two NaN different), -0.0 stays -0.0
    assert repr(materialised(lean)) == repr(reference)


def asyncua_decode(data: bytes) -> ua.PublishResponse:
    """asyncua's decoder, on a buffer that refuses negative lengths as the agent's does
    (asyncua's own reads them backwards: garbage could run it out of memory)."""
    return struct_from_binary(ua.PublishResponse, StrictBuffer(data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(response=responses())
def test_the_lean_decoder_gives_what_asyncua_gives(response: ua.PublishResponse) -> None:
    data = struct_to_binary(response)
    decoded, _ = decode_publish_response(data, lambda subscription_id: subscription_id == 7)
    assert_same(decoded, asyncua_decode(data))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(response=responses(common=True))
def test_common_responses_are_decoded_lean_every_item_a_tuple(
    response: ua.PublishResponse,
) -> None:
    data = struct_to_binary(response)
    decoded, lean = decode_publish_response(data, lambda subscription_id: True)
    assert lean
    for notification in decoded.Parameters.NotificationMessage.NotificationData:
        assert isinstance(notification, LeanDataChange)
        assert all(type(item) is tuple for item in notification.MonitoredItems)
    assert_same(decoded, asyncua_decode(data))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(response=responses(common=True))
def test_another_subscriptions_response_is_asyncuas_own(response: ua.PublishResponse) -> None:
    data = struct_to_binary(response)
    decoded, lean = decode_publish_response(data, lambda subscription_id: False)
    assert not lean
    assert repr(decoded) == repr(asyncua_decode(data))  # NaN: see assert_same


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    response=responses(),
    cut=st.integers(0, 10_000),
    noise=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
)
def test_garbage_never_gives_a_value_asyncua_would_not(
    response: ua.PublishResponse, cut: int, noise: list[tuple[int, int]]
) -> None:
    data = bytearray(struct_to_binary(response))
    for at, byte in noise:
        if data:
            data[at % len(data)] = byte
    if cut % 3 == 0 and data:
        del data[cut % len(data) :]
    garbled = bytes(data)
    try:
        reference = asyncua_decode(garbled)
    except Exception as exc:
        expected: Any = type(exc)
    else:
        expected = reference
    try:
        decoded, _ = decode_publish_response(garbled, lambda subscription_id: True)
    except Exception as exc:
        assert expected is type(exc), f"asyncua gave {expected!r}, the lean decoder raised {exc!r}"
        return
    assert isinstance(expected, ua.PublishResponse), "the lean decoder read what asyncua cannot"
    assert_same(decoded, expected)


# A lean item's reading is the reading of asyncua's DataValue.

lean_values = st.one_of(
    st.tuples(st.booleans(), st.just(VT.Boolean.value)),
    *[
        st.tuples(st.integers(low, high), st.just(vtype.value))
        for vtype, (low, high) in INT_RANGES.items()
    ],
    st.tuples(st.floats(width=32), st.just(VT.Float.value)),
    st.tuples(st.floats(), st.just(VT.Double.value)),
)
ticks = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2 * 365 * 86_400 * 10**7),  # around the end of 1601
    st.integers(133_000_000_000_000_000, 140_000_000_000_000_000),  # these years
    st.integers(2_650_000_000_000_000_000, 2_660_000_000_000_000_000),  # around 9999
)
scales = st.one_of(
    st.none(),
    st.tuples(
        st.floats(allow_nan=False, allow_infinity=False),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
)


def sensor(scale: tuple[float, float] | None) -> Sensor:
    data: dict[str, Any] = {"connection": "ua1", "node": "ns=2;s=X"}
    if scale is not None:
        data["scale"] = {"factor": scale[0], "offset": scale[1]}
    return Sensor.model_validate(data)


@settings(max_examples=1000, deadline=None)
@given(value=lean_values, source=ticks, server=ticks, scale=scales, numeric=st.booleans())
@example((math.nan, VT.Double.value), None, 133_000_000_000_000_000, None, True)
@example((1e308, VT.Double.value), 133_000_000_000_000_000, None, (10.0, 0.0), True)
@example((2**64 - 1, VT.UInt64.value), -1, 0, (1e300, 0.0), True)
@example((True, VT.Boolean.value), 2**63 - 1, None, (2.0, 1.0), False)
def test_a_lean_items_reading_is_the_reading_of_asyncuas_data_value(
    value: tuple[Any, int],
    source: int | None,
    server: int | None,
    scale: tuple[float, float] | None,
    numeric: bool,
) -> None:
    sensors = {"s": sensor(scale)}
    converter = DataValues(
        "ua1",
        sensors,
        {},
        frozenset({"s"} if numeric else ()),
        make_source(connection("opc.tcp://127.0.0.1:1/x/"), sensors).stats,
    )
    item = (1, value[0], source, server, value[1])
    assert converter.reading_from_lean("s", item, NOW_NS) == converter.reading_from(
        "s", as_data_value(item), NOW_NS
    )


@settings(max_examples=2000, deadline=None)
@given(tick=ticks)
@example(0)
@example(365 * 86_400 * 10**7)
def test_ticks_convert_as_asyncuas_datetime_does(tick: int | None) -> None:
    expected = None if tick is None else datetime_to_ns(ua.win_epoch_to_datetime(tick))
    assert ticks_to_ns(tick) == expected


def test_a_one_layout_response_takes_the_one_pass_path_with_both_timestamps() -> None:
    """The in-process bench's response (Double, source and server times): one pass."""
    stamp = datetime(2026, 12, 5, 6, 0, 0, 123456, tzinfo=UTC)
    items = [
        ua.MonitoredItemNotification(
            h,
            ua.DataValue(
                ua.Variant(h + 0.5, VT.Double), SourceTimestamp=stamp, ServerTimestamp=stamp
            ),
        )
        for h in range(1, 101)
    ]
    response = ua.PublishResponse()
    response.Parameters.SubscriptionId = 1
    response.Parameters.NotificationMessage.NotificationData = [ua.DataChangeNotification(items)]
    decoded, lean = decode_publish_response(struct_to_binary(response), lambda s: True)
    assert lean
    (notification,) = decoded.Parameters.NotificationMessage.NotificationData
    ticks_of_stamp = ua.datetime_to_win_epoch(stamp)
    assert notification.MonitoredItems[0] == (1, 1.5, ticks_of_stamp, ticks_of_stamp, 11)
    assert len(notification.MonitoredItems) == 100


def test_one_odd_item_is_asyncuas_in_place_the_rest_lean() -> None:
    good = ua.DataValue(ua.Variant(1.0, VT.Double))
    bad = ua.DataValue(ua.Variant(2.0, VT.Double))
    bad.StatusCode = ua.StatusCode(StatusCodes.BadSensorFailure)
    items = [ua.MonitoredItemNotification(1, good), ua.MonitoredItemNotification(2, bad)]
    items.append(ua.MonitoredItemNotification(3, good))
    response = ua.PublishResponse()
    response.Parameters.SubscriptionId = 1
    response.Parameters.NotificationMessage.NotificationData = [ua.DataChangeNotification(items)]
    decoded, lean = decode_publish_response(struct_to_binary(response), lambda s: True)
    assert lean
    first, odd, last = decoded.Parameters.NotificationMessage.NotificationData[0].MonitoredItems
    assert first == (1, 1.0, None, None, 11) and last == (3, 1.0, None, None, 11)
    assert isinstance(odd, ua.MonitoredItemNotification) and odd.Value == bad


def test_a_negative_length_is_an_error_never_a_read_backwards() -> None:
    """asyncua's own buffer reads it backwards (a response that decodes on and on)."""
    response = ua.PublishResponse()
    response.Parameters.SubscriptionId = 1
    text = ua.DataValue(ua.Variant("ab", VT.String))
    response.Parameters.NotificationMessage.NotificationData = [
        ua.DataChangeNotification([ua.MonitoredItemNotification(1, text)])
    ]
    data = bytearray(struct_to_binary(response))
    at = data.index(b"\x02\x00\x00\x00ab")  # the String's length, then its bytes
    data[at : at + 4] = (-5).to_bytes(4, "little", signed=True)
    assert Buffer(bytes(data)).read(0) == b""  # (asyncua's Buffer: no check of its own)
    with pytest.raises(NotEnoughData):
        decode_publish_response(bytes(data), lambda subscription_id: True)
