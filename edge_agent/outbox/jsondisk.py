"""A diskcache ``Disk`` that stores JSON bytes and integers only, and never unpickles.

diskcache's own ``Disk`` and ``JSONDisk`` unpickle any row whose mode column says "pickle"
(CVE-2025-69872, unpatched): whoever can write the SQLite file can run code in the agent.
This disk writes every value as compact UTF-8 JSON (``MODE_RAW``, inside SQLite, never in a
side file, so SQLite's ``synchronous=FULL`` covers it) and refuses, on read, every row
that is not a raw value: pickle, side files, text. Keys are ``int`` or ``str`` only.

The ``size`` it reports is the JSON byte count of each row, so diskcache's ``size``
metadata (kept by SQL triggers) is the total payload bytes: the outbox's cap uses it.
"""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any, Final

from diskcache import Disk
from diskcache.core import MODE_PICKLE, MODE_RAW, UNKNOWN

from edge_agent.errors import EdgeAgentError


class UnsafeRowError(EdgeAgentError):
    """A stored row is not plain JSON (a pickle or a side file): refused, never decoded.

    Deliberately not an ``OSError``: diskcache turns ``OSError`` from ``fetch`` into "key
    missing", which would hide the refusal.
    """


MAX_NESTING: Final = 64
"""Deepest nesting of lists and objects a stored value may have. An alarm event is a few
levels deep; a row nested thousands deep is damage (it would exhaust the stack of whoever
encodes it next: ``json`` raises ``RecursionError`` near 1,000 levels)."""

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def encode_json(value: Any) -> bytes:
    """Compact, strict JSON (no NaN/Infinity: other parsers refuse them)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def nesting_depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (0 for a scalar). Iterative, so a
    deep value cannot exhaust the stack here; stops counting past :data:`MAX_NESTING`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > MAX_NESTING:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


class JsonOnlyDisk(Disk):  # type: ignore[misc]  # diskcache ships no type hints
    """Serialise values as JSON bytes inside SQLite; refuse pickle and files on read."""

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is str or (type(key) is int and _INT64_MIN <= key <= _INT64_MAX):
            return key, True
        raise TypeError(f"outbox keys are int or str, not {type(key).__name__}")

    def get(self, key: Any, raw: bool) -> Any:
        if not raw or type(key) not in (int, str):
            raise UnsafeRowError("refused a stored key that is not a plain int or str")
        return key

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[int, int, None, Any]:
        if read:
            raise TypeError("the outbox stores JSON values, not files")
        # Integers stay SQLite integers: Cache.incr adds to the column directly.
        if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
            return 0, MODE_RAW, None, value
        data = encode_json(value)
        return len(data), MODE_RAW, None, sqlite3.Binary(data)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        return decode_row(mode, filename, value)

    def remove(self, file_path: str) -> None:
        # We never write side files, so there is nothing of ours to delete; a filename in
        # a tampered row must not make us delete an arbitrary path either.
        return None


def _check_nesting(value: bytes, decoded: Any) -> None:
    # Every list or object decoded from JSON text opens with a "[" or "{" in it: if the
    # text holds no more of those than the bound, the value cannot nest deeper (brackets
    # inside strings only make the count higher). Counting is C speed; the walk is not.
    if value.count(b"{") + value.count(b"[") <= MAX_NESTING:
        return
    if nesting_depth(decoded) > MAX_NESTING:
        raise UnsafeRowError(f"refused a stored row nested deeper than {MAX_NESTING} levels")


def decode_row(mode: Any, filename: Any, value: Any) -> Any:
    """A stored value, decoded only if it is a plain JSON row; else :class:`UnsafeRowError`.
    Also used by ``recover`` on the rows of a set-aside outbox."""
    if mode != MODE_RAW or filename is not None:
        kind = "pickle" if mode == MODE_PICKLE else f"mode {mode}"
        raise UnsafeRowError(f"refused a stored row in {kind}: only JSON rows are read")
    if type(value) is int:
        return value
    if type(value) is not bytes:
        raise UnsafeRowError("refused a stored row that is not JSON bytes")
    try:
        decoded = json.loads(value)
    except (ValueError, RecursionError) as exc:
        # RecursionError: nesting too deep for the decoder; UnicodeDecodeError is a
        # ValueError.
        raise UnsafeRowError("refused a stored row that is not valid JSON") from exc
    _check_nesting(value, decoded)
    return decoded


class _NotWritable(ValueError):
    """A number the outbox's encoder refuses (NaN, Infinity, past a double's range): the
    fast decoding stops and the row goes the slow way, where :func:`_writable` refuses it."""


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):  # "1e400": json reads it as inf
        raise _NotWritable(text)
    return number


def _no_constant(text: str) -> float:
    raise _NotWritable(text)  # NaN, Infinity, -Infinity


def _writable(record: Any) -> Any:
    """``record`` if the outbox can write it back (a nack, awaiting the hub) and the wire
    can carry it; else :class:`UnsafeRowError`: such a row was never written by the outbox,
    and every write of it would fail while it stayed leased at the head of the queue."""
    try:
        encode_json(record)
    except ValueError as exc:  # NaN/Infinity; UnicodeEncodeError (a lone surrogate)
        raise UnsafeRowError(
            f"refused a stored row the outbox cannot write back: {type(exc).__name__}"
        ) from exc
    return record


_QUEUE_HEAD: Final = '{"p":'
"""How a queue row written by the outbox starts (:func:`encode_json` of ``{"p": ...}``)."""
_DECODER: Final = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)
"""json's own decoder (its C scanner), but a value the outbox could not write back stops it."""


def decode_queue_row(mode: Any, filename: Any, value: Any) -> tuple[Any, bytes | None]:
    """:func:`decode_row` of a queue row, and the stored JSON bytes of its payload (``"p"``)
    so that a forwarder publishes them as they are instead of encoding the decoded payload
    again. The row is refused as :func:`decode_row` refuses it, and also when the outbox
    could not write it back (:func:`_writable`: a leased row is nacked or moved). The bytes
    are None (encode the payload) for a row not laid out as the outbox writes it: not
    starting with ``{"p":``, a second ``"p"``, not UTF-8 (json also reads UTF-16 and -32)."""
    if mode != MODE_RAW or filename is not None or type(value) is not bytes:
        return _writable(decode_row(mode, filename, value)), None
    try:
        text = value.decode("utf-8")
        if not text.startswith(_QUEUE_HEAD):
            return _writable(decode_row(mode, filename, value)), None
        # The payload alone (its end is where its bytes end), then the rest of the record.
        payload, end = _DECODER.raw_decode(text, len(_QUEUE_HEAD))
        if text[end : end + 1] != ",":
            return _writable(decode_row(mode, filename, value)), None
        rest = _DECODER.decode("{" + text[end + 1 :])
    except (ValueError, RecursionError):
        # decode_row refuses it (or reads what json reads and this does not, or what the
        # outbox could not write back: _writable refuses that).
        return _writable(decode_row(mode, filename, value)), None
    if not rest or "p" in rest:
        # ``{"p":…,}`` is not JSON (decode_row refuses it); json keeps the last "p".
        return _writable(decode_row(mode, filename, value)), None
    record = {"p": payload, **rest}
    _check_nesting(value, record)
    if b"\\u" in value:  # an escape: maybe a lone surrogate, which json reads
        _writable(record)
    ascii_only = len(text) == len(value)
    body = value[len(_QUEUE_HEAD) : end] if ascii_only else text[len(_QUEUE_HEAD) : end].encode()
    return record, body
