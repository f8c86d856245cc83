"""A PublishResponse decoded without an object per data change, for the common case.

asyncua's generic decoder builds a ``MonitoredItemNotification``, a ``DataValue``, a
``Variant``, a ``StatusCode`` and two ``datetime`` per data change (≈ 25 µs each, 40 % of
the agent's CPU at 10,000 items a second, docs/performance.md §4b). Here a data change
whose DataValue is a Good scalar boolean or number, with or without timestamps, becomes a
plain tuple :data:`LeanItem` ``(client handle, value, source ticks, server ticks,
variant type)`` (ticks: OPC UA's DateTime, 100 ns since 1601; ``None`` when absent).
Every other data change (a bad or uncertain status, text, arrays, picoseconds, any other
type) is decoded by asyncua's own DataValue decoder, in place in the same list; everything
around the data changes (header, other notifications, results, diagnostics) is decoded by
asyncua's own deserializers. Anything this decoder does not expect makes it give up on the
response and decode the whole of it with asyncua (:func:`decode_publish_response`).

:func:`as_data_value` gives the DataValue asyncua makes for a lean item (the tests hold
the two decoders together with it).
"""

from __future__ import annotations

import struct
import typing
from collections.abc import Callable
from typing import Any, Final

from asyncua import ua
from asyncua.common.utils import Buffer, NotEnoughData
from asyncua.ua import ua_binary
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.ua_binary import Primitives, extensionobject_from_binary, struct_from_binary

#: ``(client handle, value, source ticks or None, server ticks or None, variant type)``:
#: a Good scalar.
LeanItem = tuple[int, bool | int | float, int | None, int | None, int]

_DATA_CHANGE_ID: Final = ObjectIds.DataChangeNotification_Encoding_DefaultBinary
_PUBLISH_RESPONSE_ID: Final = ObjectIds.PublishResponse_Encoding_DefaultBinary
#: A FourByte NodeId in namespace 0 (encoding byte 1, namespace byte 0, UInt16 id).
_FOUR_BYTE_NODE: Final = struct.Struct("<BBH")
_INT32: Final = struct.Struct("<i")
_UINT32: Final = struct.Struct("<I")

#: The scalar Variant types a lean item carries, by their encoding byte: the struct code
#: asyncua unpacks each with (``Primitives``), so the value is the same Python object.
_SCALAR_CODES: Final = {
    ua.VariantType.Boolean.value: "?",
    ua.VariantType.SByte.value: "b",
    ua.VariantType.Byte.value: "B",
    ua.VariantType.Int16.value: "h",
    ua.VariantType.UInt16.value: "H",
    ua.VariantType.Int32.value: "i",
    ua.VariantType.UInt32.value: "I",
    ua.VariantType.Int64.value: "q",
    ua.VariantType.UInt64.value: "Q",
    ua.VariantType.Float.value: "f",
    ua.VariantType.Double.value: "d",
}

# DataValue's encoding mask (Part 6, 5.2.2.17).
_HAS_VALUE, _HAS_STATUS, _HAS_SOURCE, _HAS_SERVER = 0x01, 0x02, 0x04, 0x08


class LeanDataChange(ua.DataChangeNotification):
    """A ``DataChangeNotification`` whose ``MonitoredItems`` holds :data:`LeanItem` tuples
    beside asyncua's ``MonitoredItemNotification`` for the uncommon ones. Only the agent's
    subscription callback ever receives one."""

    __slots__ = ()


class _Layout:
    """One (DataValue mask, Variant type) pair's fixed-size item: the struct that unpacks
    ``ClientHandle, mask, variant type, value[, status][, source][, server]`` and where
    each optional field sits in the unpacked tuple (0: absent)."""

    __slots__ = ("iter_unpack", "server", "size", "source", "status", "unpack_from")

    def __init__(self, mask: int, code: str) -> None:
        fields, at = ["I", "B", "B", code], 4
        self.status = self.source = self.server = 0
        if mask & _HAS_STATUS:
            fields.append("I")
            self.status, at = at, at + 1
        if mask & _HAS_SOURCE:
            fields.append("q")
            self.source, at = at, at + 1
        if mask & _HAS_SERVER:
            fields.append("q")
            self.server = at
        compiled = struct.Struct("<" + "".join(fields))
        self.unpack_from = compiled.unpack_from
        self.iter_unpack = compiled.iter_unpack
        self.size = compiled.size

    def lean(self, row: tuple[Any, ...]) -> LeanItem | None:
        """The lean item of one unpacked row, or ``None`` when its status is not Good."""
        if self.status and row[self.status] != 0:
            return None
        source = row[self.source] if self.source else None
        server = row[self.server] if self.server else None
        return (row[0], row[3], source, server, row[2])


def _layouts() -> dict[int, _Layout]:
    masks = [_HAS_VALUE | extra for extra in range(0, 0x10, 2)]  # value, any of 3 others
    return {
        (mask << 8) | vtype: _Layout(mask, code)
        for mask in masks
        for vtype, code in _SCALAR_CODES.items()
    }


#: By ``mask << 8 | variant encoding byte``; a pair not here is decoded by asyncua.
_LAYOUTS: Final = _layouts()


def _field_decoder(cls: type, name: str) -> Callable[[Buffer], Any]:
    """asyncua's own deserializer of one field of one of its structures."""
    hints = typing.get_type_hints(cls, {"ua": ua})
    return ua_binary._create_type_deserializer(hints[name], cls)


_SEQUENCE_NUMBERS: Final = _field_decoder(ua.PublishResult, "AvailableSequenceNumbers")
_RESULTS: Final = _field_decoder(ua.PublishResult, "Results")
_DIAGNOSTICS: Final = _field_decoder(ua.PublishResult, "DiagnosticInfos")
_ITEM_DIAGNOSTICS: Final = _field_decoder(ua.DataChangeNotification, "DiagnosticInfos")


class StrictBuffer(Buffer):
    """asyncua's ``Buffer`` refusing a negative length. asyncua's reads a negative length
    (a garbled or hostile String, ByteString or array length other than -1) backwards:
    its position goes back, its size up, and a list of 2³¹ items decodes on and on until
    memory runs out (seen here: 9 GiB in a fuzz test). Every length a well-formed
    message has is ≥ 0 or the -1 asyncua checks for before reading: nothing else
    differs."""

    def read(self, size: int) -> bytes:
        if size < 0:
            raise NotEnoughData(f"negative length {size} in the message")
        return super().read(size)

    def skip(self, size: int) -> None:
        if size < 0:
            raise NotEnoughData(f"negative length {size} in the message")
        super().skip(size)

    def copy(self, size: int = -1) -> Buffer:
        if size == -1 or size > len(self):
            size = len(self)
        return StrictBuffer(self._data, self.cur_pos, size)


class _NotLean(Exception):
    """The response is not one this decoder takes: asyncua decodes all of it."""


def decode_publish_response(
    data: bytes, lean_for: Callable[[int], bool]
) -> tuple[ua.PublishResponse, bool]:
    """``data`` (a PublishResponse's body, its TypeId first) decoded, and whether the lean
    decoder did it. ``lean_for(subscription_id)`` says whether that subscription's
    callback takes :class:`LeanDataChange`; for any other, and for anything unexpected,
    asyncua decodes the whole response (and raises what it raises on a malformed one)."""
    try:
        return _decode_lean(data, lean_for), True
    except Exception:  # any surprise: asyncua's decoder has the last word
        return struct_from_binary(ua.PublishResponse, StrictBuffer(data)), False


def _decode_lean(data: bytes, lean_for: Callable[[int], bool]) -> ua.PublishResponse:
    if _FOUR_BYTE_NODE.unpack_from(data, 0) != (1, 0, _PUBLISH_RESPONSE_ID):
        raise _NotLean("not a PublishResponse")
    buffer = StrictBuffer(data, _FOUR_BYTE_NODE.size)
    header = struct_from_binary(ua.ResponseHeader, buffer)
    subscription_id = Primitives.UInt32.unpack(buffer)
    if not lean_for(subscription_id):
        raise _NotLean("another subscription's callback")
    result = ua.PublishResult(SubscriptionId=subscription_id)
    result.AvailableSequenceNumbers = _SEQUENCE_NUMBERS(buffer)
    result.MoreNotifications = Primitives.Boolean.unpack(buffer)
    message = result.NotificationMessage
    message.SequenceNumber = Primitives.UInt32.unpack(buffer)
    message.PublishTime = Primitives.DateTime.unpack(buffer)
    count = Primitives.Int32.unpack(buffer)
    message.NotificationData = [_notification(data, buffer) for _ in range(count)]
    result.Results = _RESULTS(buffer)
    result.DiagnosticInfos = _DIAGNOSTICS(buffer)
    return ua.PublishResponse(ResponseHeader=header, Parameters=result)


def _notification(data: bytes, buffer: Buffer) -> Any:
    """One ExtensionObject of NotificationData: a data change decoded here, any other
    kind by asyncua."""
    at = buffer.cur_pos
    if (
        len(buffer) >= 9
        and _FOUR_BYTE_NODE.unpack_from(data, at) == (1, 0, _DATA_CHANGE_ID)
        and data[at + 4] == 1  # a body with its length
    ):
        length = _INT32.unpack_from(data, at + 5)[0]
        if 1 <= length <= len(buffer) - 9:
            buffer.skip(9 + length)
            return _data_change(memoryview(data)[at + 9 : at + 9 + length])
    return extensionobject_from_binary(buffer)


def _data_change(body: memoryview) -> LeanDataChange:
    count = _INT32.unpack_from(body, 0)[0]
    at = 4
    items: list[Any] = []
    if count > 0:
        at = _same_layout(body, count, items) or _one_by_one(body, count, items)
    notification = LeanDataChange(MonitoredItems=items)
    notification.DiagnosticInfos = _ITEM_DIAGNOSTICS(StrictBuffer(body.tobytes(), at))
    return notification


def _same_layout(body: memoryview, count: int, items: list[Any]) -> int:
    """Every item of one layout, Good (a server's usual response): unpacked in one pass.
    Returns where the items end, or 0 (``items`` untouched) when they are not all so."""
    layout = _LAYOUTS.get(body[8] << 8 | body[9]) if len(body) >= 10 else None
    end = 4 + count * layout.size if layout is not None else 0
    if layout is None or end > len(body):
        return 0
    rows = list(layout.iter_unpack(body[4:end]))
    first = rows[0]
    mask, vtype = first[1], first[2]
    if any(row[1] != mask or row[2] != vtype for row in rows):
        return 0
    status, source, server = layout.status, layout.source, layout.server
    if status and any(row[status] != 0 for row in rows):
        return 0
    if source and server:
        items.extend([(row[0], row[3], row[source], row[server], vtype) for row in rows])
    elif source:
        items.extend([(row[0], row[3], row[source], None, vtype) for row in rows])
    elif server:
        items.extend([(row[0], row[3], None, row[server], vtype) for row in rows])
    else:
        items.extend([(row[0], row[3], None, None, vtype) for row in rows])
    return end


def _one_by_one(body: memoryview, count: int, items: list[Any]) -> int:
    """Items of mixed layouts: each lean if it can be, else decoded by asyncua."""
    raw = body.tobytes()
    layouts = _LAYOUTS
    append = items.append
    at = 4
    for _ in range(count):
        layout = layouts.get(raw[at + 4] << 8 | raw[at + 5]) if at + 6 <= len(raw) else None
        if layout is not None and at + layout.size <= len(raw):
            item = layout.lean(layout.unpack_from(raw, at))
            if item is not None:
                append(item)
                at += layout.size
                continue
        buffer = StrictBuffer(raw, at)
        handle = Primitives.UInt32.unpack(buffer)
        value = struct_from_binary(ua.DataValue, buffer)
        append(ua.MonitoredItemNotification(ClientHandle=handle, Value=value))
        at = buffer.cur_pos
    return at


_VARIANT_TYPES: Final = {vtype: ua.VariantType(vtype) for vtype in _SCALAR_CODES}


def as_data_value(item: LeanItem) -> ua.DataValue:
    """The DataValue asyncua decodes for a lean item (a Good status: asyncua gives
    ``StatusCode()`` both for an absent one and for 0)."""
    _, value, source, server, variant_type = item
    # asyncua's DataValue types its timestamps as its DateTime alias; they are datetimes.
    source_time: Any = None if source is None else ua.win_epoch_to_datetime(source)
    server_time: Any = None if server is None else ua.win_epoch_to_datetime(server)
    return ua.DataValue(
        ua.Variant(value, _VARIANT_TYPES[variant_type]),
        SourceTimestamp=source_time,
        ServerTimestamp=server_time,
    )
