"""The lease hands out each payload's stored JSON bytes (issue 16): a forwarder publishes
them as they are instead of encoding the decoded payload again. Every check of a row stays:
a row is refused, and quarantined, exactly when it was refused before."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.forwarders.hub_tracking import encode_payload
from edge_agent.outbox import Outbox
from edge_agent.outbox.jsondisk import (
    MAX_NESTING,
    UnsafeRowError,
    decode_queue_row,
    decode_row,
    encode_json,
)

MODE_RAW = 1  # diskcache.core.MODE_RAW
MODE_PICKLE = 4

PAYLOADS: list[dict[str, Any]] = [
    {"event_id": "e-1", "alert_id": "a-1", "value": 7.25, "limit": 6.5},
    {"title": "Pumpe Überdruck — ça déborde 漏れ", "emoji": "🚨", "n": -3},
    {"nested": {"list": [1, [2, [3, {"x": None}]]], "t": True, "f": False}, "e": 1e-300},
    {"quote": 'a "b" \\ c\n\t\u0001', "big": 2**62, "neg": -0.0},
    {},
]


def decode(value: bytes) -> tuple[Any, bytes | None]:
    return decode_queue_row(MODE_RAW, None, value)


def outcome(call: Any, *args: Any) -> Any:
    try:
        return ("ok", call(*args))
    except UnsafeRowError as exc:
        return ("refused", str(exc))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_row_as_put_gives_the_payload_bytes_the_forwarder_sent_before(
    payload: dict[str, Any],
) -> None:
    row = encode_json({"p": payload, "t": 1764900000.123, "a": 2, "e": "broker down: 0x87"})
    record, body = decode(row)
    assert record == decode_row(MODE_RAW, None, row)
    assert list(record) == ["p", "t", "a", "e"]
    assert body == encode_payload(payload)  # byte for byte what was published before


@pytest.mark.parametrize(
    ("row", "why"),
    [
        (b'{"p":{"a":1},}', "a trailing comma is not JSON"),
        (b'{"p":{"a":1},"t":1,"a":0,"e":null,"p":{"b":2}}', "json keeps the last p"),
        (b'{"p":{"a":1} ,"t":1,"a":0,"e":null}', "space before the comma"),
        (b'{"p": {"a":1},"t":1,"a":0,"e":null}', "space after the colon"),
        (b'{"t":1,"p":{"a":1},"a":0,"e":null}', "p not first"),
        (b'\xef\xbb\xbf{"p":{"a":1},"t":1,"a":0,"e":null}', "a UTF-8 BOM (json reads it)"),
        ('{"p":{"a":1},"t":1,"a":0,"e":null}'.encode("utf-16"), "UTF-16 (json reads it)"),
        (b'{"p":{"a":1}', "cut short"),
        (b'{"p":{"a":1},"t":1,"a":0,"e":null} x', "extra data"),
        (b'{"p":{"a":1},"t":1,"a":0,"e":null}\n', "trailing whitespace"),
        (b'{"p":{"a":"\xff"},"t":1,"a":0,"e":null}', "not UTF-8"),
        (b'{"p":' + b"[" * 70 + b"]" * 70 + b',"t":1,"a":0,"e":null}', "too deep"),
        (b'{"p":' + b"[" * 5000 + b"]" * 5000 + b',"t":1,"a":0,"e":null}', "far too deep"),
        (b'{"p":{"s":"' + b"[" * 100 + b'"},"t":1,"a":0,"e":null}', "brackets in a string"),
    ],
)
def test_rows_not_laid_out_as_put_decode_as_before(row: bytes, why: str) -> None:
    expected = outcome(decode_row, MODE_RAW, None, row)
    got = outcome(decode, row)
    if expected[0] == "refused":
        assert got == expected, why
        return
    record, body = got[1]
    assert record == expected[1] or json.dumps(record) == json.dumps(expected[1]), why  # NaN
    if body is not None:
        assert json.loads(body) == record["p"] or json.dumps(json.loads(body)) == json.dumps(
            record["p"]
        ), why


def test_the_nesting_bound_still_refuses_a_deep_row() -> None:
    deep: Any = {}
    for _ in range(MAX_NESTING + 1):
        deep = {"x": deep}
    row = b'{"p":' + json.dumps(deep, separators=(",", ":")).encode() + b',"t":1,"a":0,"e":null}'
    with pytest.raises(UnsafeRowError, match="nested deeper"):
        decode(row)
    with pytest.raises(UnsafeRowError, match="nested deeper"):
        decode_row(MODE_RAW, None, row)


def test_other_modes_are_refused_as_before() -> None:
    for mode, filename, value in [
        (MODE_PICKLE, None, b"\x80\x04K\x01."),
        (MODE_RAW, "ab/cd.val", None),
        (MODE_RAW, None, "text"),
        (3, None, b'{"p":{}}'),
    ]:
        assert outcome(decode_queue_row, mode, filename, value)[0] == "refused"
        assert outcome(decode_row, mode, filename, value)[0] == "refused"
    assert decode_queue_row(MODE_RAW, None, 7) == (7, None)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(
    payload=st.dictionaries(st.text(), json_values, max_size=5),
    tail=st.dictionaries(st.text(), json_values, max_size=4),
    cut=st.integers(min_value=0, max_value=400),
    flip=st.binary(max_size=3),
)
def test_decode_queue_row_agrees_with_decode_row(
    payload: dict[str, Any], tail: dict[str, Any], cut: int, flip: bytes
) -> None:
    """Any row, as written or damaged (cut short, bytes inserted): refused alike, decoded
    alike, and the bytes handed out are exactly the payload's JSON."""
    intact = encode_json({"p": payload, **{k: v for k, v in tail.items() if k != "p"}})
    for row in (intact, intact[:cut] + flip + intact[cut:], intact[:cut]):
        expected = outcome(decode_row, MODE_RAW, None, row)
        got = outcome(decode, row)
        if expected[0] == "refused":
            assert got == expected
            continue
        assert got[0] == "ok"
        record, body = got[1]
        assert record == expected[1]
        if body is not None:
            assert isinstance(record, dict)
            assert json.loads(body) == record["p"]


def test_lease_hands_out_the_stored_payload_bytes(outbox: Outbox) -> None:
    ids = outbox.put_many(PAYLOADS)
    items = outbox.lease(len(PAYLOADS))
    assert [i.id for i in items] == ids
    for item, payload in zip(items, PAYLOADS, strict=True):
        assert item.payload == payload
        assert item.body == encode_payload(payload)


def test_a_nacked_item_keeps_its_bytes(outbox: Outbox) -> None:
    outbox.put({"event_id": "e-1", "text": "ü"})
    [item] = outbox.lease(1)
    outbox.nack([item.id], reason="broker down")
    [again] = outbox.lease(1)
    assert again.attempts == 1
    assert again.body == item.body == encode_payload({"event_id": "e-1", "text": "ü"})


def _set_value(directory: Path, key: int, value: bytes) -> None:
    with sqlite3.connect(directory / "cache.db") as db:
        changed = db.execute(
            "UPDATE Cache SET value = ? WHERE key = ? AND raw = 1", (value, key)
        ).rowcount
    assert changed == 1


def test_a_row_laid_out_otherwise_is_leased_without_bytes(tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    with Outbox.open(directory, 1_000_000) as outbox:
        first, second = outbox.put_many([{"n": 1}, {"n": 2}])
    _set_value(directory, second, b'{ "t": 1.0, "a": 0, "e": null, "p": {"n": 2} }')
    with Outbox.open(directory, 1_000_000) as outbox:
        items = outbox.lease(2)
        assert [(i.id, dict(i.payload)) for i in items] == [(first, {"n": 1}), (second, {"n": 2})]
        assert items[0].body == b'{"n":1}'
        assert items[1].body is None  # the forwarder encodes this one
        assert outbox.stats().quarantined == 0


@pytest.mark.parametrize(
    "value",
    [
        b'{"p":{"n":2},}',
        b'{"p":{"n":2},"t":1.0,"a":0,"e":null',
        b'{"p":' + b"[" * 70 + b"]" * 70 + b',"t":1.0,"a":0,"e":null}',
        b'{"p":{"n":2},"t":"yesterday","a":0,"e":null}',
        b'{"p":{"n":2},"t":1.0,"a":-1,"e":null}',
        b'{"p":[2],"t":1.0,"a":0,"e":null}',
    ],
)
def test_a_damaged_row_is_still_quarantined_by_the_lease(tmp_path: Path, value: bytes) -> None:
    directory = tmp_path / "outbox"
    with Outbox.open(directory, 1_000_000) as outbox:
        first, second, third = outbox.put_many([{"n": 1}, {"n": 2}, {"n": 3}])
    _set_value(directory, second, value)
    with Outbox.open(directory, 1_000_000) as outbox:
        items = outbox.lease(3)
        assert [i.id for i in items] == [first, third]
        assert outbox.stats().quarantined == 1
        [letter] = outbox.dead_letters()
        assert letter.id == second
        assert letter.reason.startswith("refused stored row: ")
        assert letter.raw is not None and letter.raw["bytes"] == len(value)
