"""Pure decoding of Modbus registers and bits into sensor values (and the inverse, for the
simulator and tests).

Conventions: ``word_order: big`` means the first register holds the most significant word;
``byte_order: big`` means each register carries its high byte first (the Modbus norm).
``byte_order: little`` swaps the two bytes inside every register, so the four layouts of a
32-bit value are ABCD (big/big), CDAB (word little), BADC (byte little) and DCBA (both).
Strings hold two characters per register; only ``byte_order`` applies to them.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable, Sequence
from typing import Final, Literal

from edge_agent.config.models import Register, RegisterType, Scale
from edge_agent.errors import EdgeAgentError
from edge_agent.readings import Value

Order = Literal["big", "little"]

NOT_A_NUMBER: Final = "not a number"

# struct format (big-endian) of each fixed-size numeric type.
STRUCT_FORMATS: Final[dict[RegisterType, str]] = {
    RegisterType.INT16: ">h",
    RegisterType.UINT16: ">H",
    RegisterType.INT32: ">i",
    RegisterType.UINT32: ">I",
    RegisterType.INT64: ">q",
    RegisterType.UINT64: ">Q",
    RegisterType.FLOAT32: ">f",
    RegisterType.FLOAT64: ">d",
}
FLOAT_TYPES: Final = (RegisterType.FLOAT32, RegisterType.FLOAT64)


class DecodeError(EdgeAgentError, ValueError):
    """The registers hold no usable value; ``reason`` becomes the bad reading's reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def registers_to_bytes(words: Sequence[int], word_order: Order, byte_order: Order) -> bytes:
    """The value's bytes, most significant first, from registers in the given orders."""
    ordered = list(words) if word_order == "big" else list(reversed(words))
    out = bytearray()
    for word in ordered:
        high, low = (word >> 8) & 0xFF, word & 0xFF
        out += bytes((high, low)) if byte_order == "big" else bytes((low, high))
    return bytes(out)


def bytes_to_registers(data: bytes, word_order: Order, byte_order: Order) -> list[int]:
    """The inverse of :func:`registers_to_bytes` (``data`` has an even length)."""
    words = []
    for i in range(0, len(data), 2):
        first, second = data[i], data[i + 1]
        words.append((first << 8) | second if byte_order == "big" else (second << 8) | first)
    return words if word_order == "big" else list(reversed(words))


def apply_scale(value: float, scale: Scale | None) -> float:
    """value × factor + offset; without a ``scale:`` the raw number is kept as it is."""
    if scale is None:
        return value
    return value * scale.factor + scale.offset


def decode_registers(register: Register, words: Sequence[int], scale: Scale | None) -> Value:
    """Decode one sensor's registers (exactly ``register.count`` of them).

    Raises :class:`DecodeError` for NaN and infinities (``"not a number"``) and for a
    string that is not text.
    """
    if len(words) != register.count:
        raise DecodeError(f"expected {register.count} registers, got {len(words)}")
    kind = register.value_type
    if kind is RegisterType.BOOL:
        bit = register.bit or 0
        return bool((words[0] >> bit) & 1)
    if kind is RegisterType.STRING:
        raw = registers_to_bytes(words, "big", register.byte_order)[: register.length]
        try:
            return raw.decode("utf-8").rstrip("\x00")
        except UnicodeDecodeError as exc:
            raise DecodeError("string registers are not UTF-8 text") from exc
    data = registers_to_bytes(words, register.word_order, register.byte_order)
    (number,) = struct.unpack(STRUCT_FORMATS[kind], data)
    # One check after scaling covers a NaN or infinity on the wire too (no scale turns one
    # into a finite number) and a finite value scaled past the float range.
    scaled = apply_scale(number, scale)
    if isinstance(scaled, float) and not math.isfinite(scaled):
        raise DecodeError(NOT_A_NUMBER)
    return scaled


Decoder = Callable[[Sequence[int]], Value]


def compile_decoder(register: Register, scale: Scale | None) -> Decoder:
    """A fast decoder for one sensor, equivalent to :func:`decode_registers`.

    Built once per sensor so that a poll cycle of thousands of sensors does not look up
    types and orders again for every value; sensors of one layout and scale share one
    decoder (issue 16: one closure and two ``Struct`` each were about 1 KiB per sensor,
    10 MiB of a 10,000-tag agent).
    """
    kind = register.value_type
    if kind is RegisterType.STRING:
        return lambda words: decode_registers(register, words, scale)
    if kind is RegisterType.BOOL:
        return _bool_decoder(register.bit or 0)
    factor, offset = (scale.factor, scale.offset) if scale is not None else (1.0, 0.0)
    return _number_decoder(
        kind,
        register.count,
        register.word_order == "little",
        register.byte_order == "little",
        scale is None,
        factor,
        offset,
    )


@functools.lru_cache(maxsize=64)
def _bool_decoder(bit: int) -> Decoder:
    mask = 1 << bit
    return lambda words: bool(words[0] & mask)


@functools.lru_cache(maxsize=1024)  # layouts × scales in use: a handful on any real site
def _number_decoder(
    kind: RegisterType,
    count: int,
    reverse: bool,
    swap: bool,
    unscaled: bool,
    factor: float,
    offset: float,
) -> Decoder:
    number_struct = struct.Struct(STRUCT_FORMATS[kind])
    words_struct = struct.Struct(f">{count}H")
    check_float = kind in FLOAT_TYPES

    def decode(words: Sequence[int]) -> Value:
        if len(words) != count:
            raise DecodeError(f"expected {count} registers, got {len(words)}")
        ordered = words[::-1] if reverse else words
        if swap:
            ordered = [((w & 0xFF) << 8) | (w >> 8) for w in ordered]
        (number,) = number_struct.unpack(words_struct.pack(*ordered))
        if check_float and not math.isfinite(number):
            raise DecodeError(NOT_A_NUMBER)
        if unscaled:
            return number  # type: ignore[no-any-return]
        scaled = number * factor + offset
        if not math.isfinite(scaled):
            raise DecodeError(NOT_A_NUMBER)
        return scaled  # type: ignore[no-any-return]

    return decode


def decode_bits(bits: Sequence[bool]) -> bool:
    """A coil or discrete input: one bit."""
    return bool(bits[0])


def encode_value(register: Register, value: float | int | bool | str) -> list[int]:
    """Registers that decode to ``value`` (no scale applied): for the simulator and tests.

    Bits tables are not registers: use the bool directly for them.
    """
    kind = register.value_type
    if kind is RegisterType.BOOL:
        return [(1 << (register.bit or 0)) if value else 0]
    if kind is RegisterType.STRING:
        text = str(value).encode("utf-8")[: register.length]
        padded = text.ljust(register.count * 2, b"\x00")
        return bytes_to_registers(padded, "big", register.byte_order)
    fmt = STRUCT_FORMATS[kind]
    number: float | int = float(value) if kind in FLOAT_TYPES else int(value)
    return bytes_to_registers(struct.pack(fmt, number), register.word_order, register.byte_order)


def unscale(value: float, scale: Scale | None) -> float:
    """The raw number that :func:`apply_scale` turns into ``value``."""
    if scale is None:
        return value
    return (value - scale.offset) / scale.factor
