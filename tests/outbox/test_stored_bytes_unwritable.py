"""The lease's fast decoding refuses a queue row the outbox could not write back (NaN,
Infinity, a number past a double's range, a lone surrogate): json reads them, the outbox's
encoder refuses them, so a nack or a move of the leased row would fail every time."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from diskcache.core import MODE_RAW

from edge_agent.outbox import Outbox
from edge_agent.outbox.jsondisk import UnsafeRowError, decode_queue_row, encode_json


def _row(field: bytes) -> bytes:
    return b'{"p":{"event_id":"e1","v":' + field + b'},"t":1.0,"a":0,"e":null}'


UNWRITABLE = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e400",
    b"9E+308",
    b"1e0309",
    b"1" + b"0" * 250 + b"e60",  # overflows with a 2-digit exponent
    b"1" * 320 + b".5",
    b'"\\ud800"',
    b'"a\\uDFFFb"',
    b'"\xed\xa0\x80"',  # a surrogate encoded: not UTF-8, json reads it all the same
]


@pytest.mark.parametrize("field", UNWRITABLE)
def test_a_row_the_outbox_cannot_write_back_is_refused(field: bytes) -> None:
    with pytest.raises(UnsafeRowError, match="cannot write back"):
        decode_queue_row(MODE_RAW, None, _row(field))
    # Laid out otherwise (the slow path): refused the same way.
    with pytest.raises(UnsafeRowError, match="cannot write back"):
        decode_queue_row(MODE_RAW, None, b" " + _row(field))


@pytest.mark.parametrize(
    "field",
    [b'"NaN and Infinity"', b"1e308", b"1e-400", b"1" * 4000, b'"\\ud83d\\udea8"', b'"\\u00e9"'],
)
def test_rows_that_only_look_unwritable_are_read(field: bytes) -> None:
    record, body = decode_queue_row(MODE_RAW, None, _row(field))
    encode_json(record)
    assert body is not None and body.startswith(b'{"event_id"')


def test_the_lease_moves_such_a_row_to_the_dead_letters(tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    with Outbox.open(directory, 10_000_000) as store:
        ids = store.put_many([{"event_id": f"e{i}"} for i in range(3)])
    with sqlite3.connect(directory / "cache.db") as db:
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (_row(b"NaN"), ids[1]))
    with Outbox.open(directory, 10_000_000) as store:
        leased = store.lease(10)
        assert [i.id for i in leased] == [ids[0], ids[2]]
        store.nack([i.id for i in leased], reason="x")  # writes back what was leased
        (letter,) = store.dead_letters()
        assert letter.id == ids[1] and "cannot write back" in letter.reason
