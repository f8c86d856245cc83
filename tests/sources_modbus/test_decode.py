"""Decoding, property-tested against `struct` encodings in every type, word and byte order.

The expected register layouts are built here from the byte permutations the orders
describe (ABCD, CDAB, BADC, DCBA for 32 bits and their 16/64-bit equivalents), not from
the code under test.
"""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.config.models import Register, RegisterTable, RegisterType, Scale
from edge_agent.sources.modbus.decode import (
    NOT_A_NUMBER,
    DecodeError,
    compile_decoder,
    decode_bits,
    decode_registers,
    encode_value,
    unscale,
)

FORMATS = {
    RegisterType.INT16: "h",
    RegisterType.UINT16: "H",
    RegisterType.INT32: "i",
    RegisterType.UINT32: "I",
    RegisterType.INT64: "q",
    RegisterType.UINT64: "Q",
    RegisterType.FLOAT32: "f",
    RegisterType.FLOAT64: "d",
}
ORDERS = ("big", "little")


def value_strategy(kind: RegisterType) -> st.SearchStrategy[float | int]:
    fmt = FORMATS[kind]
    if fmt == "f":
        return st.floats(width=32, allow_nan=False, allow_infinity=False)
    if fmt == "d":
        return st.floats(allow_nan=False, allow_infinity=False)
    bits = struct.calcsize(fmt) * 8
    if fmt.isupper():
        return st.integers(0, 2**bits - 1)
    return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def wire_registers(kind: RegisterType, value: float | int, word: str, byte: str) -> list[int]:
    """What a device with this layout puts on the wire, from struct's big-endian bytes."""
    data = struct.pack(">" + FORMATS[kind], value)
    words = [data[i : i + 2] for i in range(0, len(data), 2)]  # most significant first
    if word == "little":
        words.reverse()
    if byte == "little":
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


numeric_cases = st.sampled_from(list(FORMATS)).flatmap(
    lambda kind: st.tuples(
        st.just(kind), value_strategy(kind), st.sampled_from(ORDERS), st.sampled_from(ORDERS)
    )
)


@given(numeric_cases)
def test_every_type_in_every_order_decodes_to_the_struct_value(
    case: tuple[RegisterType, float | int, str, str],
) -> None:
    kind, value, word, byte = case
    register = Register(
        table=RegisterTable.HOLDING, address=0, type=kind, word_order=word, byte_order=byte
    )
    decoded = decode_registers(register, wire_registers(kind, value, word, byte), None)
    # The compiled decoder the source uses gives the same value, in the same type.
    compiled = compile_decoder(register, None)(tuple(wire_registers(kind, value, word, byte)))
    assert compiled == decoded and type(compiled) is type(decoded)
    if kind is RegisterType.FLOAT32:
        assert decoded == struct.unpack(">f", struct.pack(">f", value))[0]
    else:
        assert decoded == value
    assert encode_value(register, value) == wire_registers(kind, value, word, byte)


def test_the_four_32_bit_layouts_by_name() -> None:
    # 0x41200000 is 10.0 as a float32: ABCD on the wire is 4120 0000.
    for word, byte, words in (
        ("big", "big", [0x4120, 0x0000]),
        ("little", "big", [0x0000, 0x4120]),
        ("big", "little", [0x2041, 0x0000]),
        ("little", "little", [0x0000, 0x2041]),
    ):
        register = Register(
            table=RegisterTable.INPUT, address=0, type="float32", word_order=word, byte_order=byte
        )
        assert decode_registers(register, words, None) == 10.0


@pytest.mark.parametrize("kind", [RegisterType.FLOAT32, RegisterType.FLOAT64])
@pytest.mark.parametrize("special", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("word", ORDERS)
def test_nan_and_infinities_are_not_a_number(kind: RegisterType, special: float, word: str) -> None:
    register = Register(table=RegisterTable.HOLDING, address=0, type=kind, word_order=word)
    with pytest.raises(DecodeError) as caught:
        decode_registers(register, wire_registers(kind, special, word, "big"), None)
    assert caught.value.reason == NOT_A_NUMBER
    with pytest.raises(DecodeError) as caught:
        compile_decoder(register, Scale(factor=2))(wire_registers(kind, special, word, "big"))
    assert caught.value.reason == NOT_A_NUMBER


@given(
    raw=st.integers(-32768, 32767),
    factor=st.floats(-1000, 1000, allow_nan=False).filter(lambda f: f != 0),
    offset=st.floats(-1e6, 1e6, allow_nan=False),
)
def test_scale_is_raw_times_factor_plus_offset(raw: int, factor: float, offset: float) -> None:
    register = Register(table=RegisterTable.HOLDING, address=0, type="int16")
    scale = Scale(factor=factor, offset=offset)
    words = wire_registers(RegisterType.INT16, raw, "big", "big")
    assert decode_registers(register, words, scale) == raw * factor + offset
    assert compile_decoder(register, scale)(words) == raw * factor + offset


def test_without_scale_integers_stay_integers() -> None:
    register = Register(table=RegisterTable.HOLDING, address=0, type="uint32")
    assert decode_registers(register, [0x0001, 0x0002], None) == 65538
    assert isinstance(decode_registers(register, [0x0001, 0x0002], None), int)


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20))
def test_strings_two_characters_per_register(text: str) -> None:
    length = max(1, len(text))
    data = text.encode().ljust(((length + 1) // 2) * 2, b"\x00")
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    big = Register(table=RegisterTable.HOLDING, address=0, type="string", length=length)
    assert decode_registers(big, words, None) == text
    swapped = [int.from_bytes(data[i : i + 2][::-1], "big") for i in range(0, len(data), 2)]
    little = Register(
        table=RegisterTable.HOLDING, address=0, type="string", length=length, byte_order="little"
    )
    assert decode_registers(little, swapped, None) == text


def test_a_string_that_is_not_text_is_a_decode_error() -> None:
    register = Register(table=RegisterTable.HOLDING, address=0, type="string", length=2)
    with pytest.raises(DecodeError):
        decode_registers(register, [0xFFFE], None)


@given(word=st.integers(0, 0xFFFF), bit=st.integers(0, 15))
def test_bool_from_one_bit_of_a_register(word: int, bit: int) -> None:
    register = Register(table=RegisterTable.HOLDING, address=0, type="bool", bit=bit)
    assert decode_registers(register, [word], None) is bool(word & (1 << bit))
    assert compile_decoder(register, None)([word]) is bool(word & (1 << bit))


def test_wrong_register_count_is_an_error_not_a_shifted_value() -> None:
    register = Register(table=RegisterTable.HOLDING, address=0, type="float32")
    with pytest.raises(DecodeError):
        decode_registers(register, [0x4120], None)
    with pytest.raises(DecodeError):
        compile_decoder(register, None)([0x4120])


@pytest.mark.parametrize("factor", [1e300, -1e300])
def test_a_finite_raw_value_scaled_past_the_float_range_is_not_a_number(factor: float) -> None:
    """A finite float64 times a large factor overflows to ±inf: a bad reading, never a value."""
    register = Register(table=RegisterTable.HOLDING, address=0, type="float64")
    words = wire_registers(RegisterType.FLOAT64, 1e300, "big", "big")
    scale = Scale(factor=factor)
    with pytest.raises(DecodeError, match=NOT_A_NUMBER):
        decode_registers(register, words, scale)
    with pytest.raises(DecodeError, match=NOT_A_NUMBER):
        compile_decoder(register, scale)(words)
    # The same value with a factor that stays in range is a good reading.
    assert decode_registers(register, words, Scale(factor=1.0)) == 1e300


def test_the_simulators_encoding_and_unscaling_by_exact_values() -> None:
    """What the simulator writes is what the agent reads: pinned by value, not only by a
    round trip that a pair of symmetric mistakes would pass."""
    flag = Register(table=RegisterTable.HOLDING, address=0, type="bool", bit=3)
    assert encode_value(flag, True) == [0b1000]
    assert encode_value(flag, False) == [0]
    text = Register(table=RegisterTable.HOLDING, address=0, type="string", length=3)
    assert encode_value(text, "abcdef") == [0x6162, 0x6300]  # cut to length, NUL-padded
    assert unscale(25.0, Scale(factor=0.5, offset=5.0)) == 40.0
    assert unscale(25.0, None) == 25.0
    assert decode_bits([True, False]) is True
    assert decode_bits([False, True]) is False
    error = DecodeError("not a number")
    assert error.reason == "not a number" and str(error) == "not a number"


@pytest.mark.parametrize("special", [math.nan, math.inf, -math.inf])
def test_the_compiled_decoder_without_scale_refuses_nan_and_infinities(special: float) -> None:
    """Unscaled, the compiled decoder returns the raw number at once: its own check is all
    that stands between a NaN on the wire and a good reading."""
    for kind in (RegisterType.FLOAT32, RegisterType.FLOAT64):
        register = Register(table=RegisterTable.HOLDING, address=0, type=kind)
        with pytest.raises(DecodeError, match=NOT_A_NUMBER):
            compile_decoder(register, None)(wire_registers(kind, special, "big", "big"))


def test_the_compiled_decoder_of_a_string_reads_text() -> None:
    register = Register(
        table=RegisterTable.HOLDING, address=0, type="string", length=3, byte_order="little"
    )
    decode = compile_decoder(register, None)
    assert decode([0x6261, 0x0063]) == "abc"  # "ab", "c\0" with the bytes of each swapped
    with pytest.raises(DecodeError, match="not UTF-8"):
        decode([0xFEFF, 0x0000])


def test_a_bool_without_a_bit_is_bit_zero() -> None:
    """Only a coil or discrete input has no ``bit:``; read as a register, it is bit 0."""
    register = Register(table=RegisterTable.COIL, address=0, type="bool")
    assert register.bit is None
    assert encode_value(register, True) == [1]
    assert decode_registers(register, [0b10], None) is False
    assert decode_registers(register, [0b01], None) is True
    assert compile_decoder(register, None)([0b10]) is False
    assert compile_decoder(register, None)([0b01]) is True


def test_sensors_of_one_layout_and_scale_share_one_decoder() -> None:
    """One decoder per layout and scale, not per sensor (issue 16: about 1 KiB each)."""
    first = Register(table=RegisterTable.HOLDING, address=0, type=RegisterType.FLOAT32)
    second = Register(table=RegisterTable.HOLDING, address=9, type=RegisterType.FLOAT32)
    little = Register(
        table=RegisterTable.HOLDING, address=9, type=RegisterType.FLOAT32, word_order="little"
    )
    assert compile_decoder(first, None) is compile_decoder(second, None)
    assert compile_decoder(first, Scale(factor=2)) is compile_decoder(second, Scale(factor=2))
    assert compile_decoder(first, None) is not compile_decoder(second, Scale(factor=2))
    assert compile_decoder(first, None) is not compile_decoder(little, None)
    words = wire_registers(RegisterType.FLOAT32, 1.5, "big", "big")
    assert compile_decoder(second, Scale(factor=2, offset=1))(words) == 4.0
    assert compile_decoder(little, None)(list(reversed(words))) == 1.5
