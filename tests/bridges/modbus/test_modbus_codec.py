"""One point's registers <-> value, from real register blocks."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest

from bridges.modbus import (
    DataType,
    EncodeError,
    Function,
    Order,
    Point,
    PointValueError,
    ValueKind,
    bytes_to_registers,
    decode_point,
    encode_point,
    float32_to_decimal,
    registers_to_bytes,
)


def point(type_: str = "u16", kind: ValueKind = ValueKind.DECIMAL, **kw: object) -> Point:
    fields: dict[str, object] = {
        "name": "p", "function": Function.INPUT, "address": 0, "type": DataType(type_),
        "kind": kind, "property": "p",
    }
    fields.update(kw)
    return Point(**fields)  # type: ignore[arg-type]


def test_float32_230_5_volts_from_its_registers() -> None:
    volts = point("float32", ValueKind.FLOAT)
    assert decode_point(volts, [0x4366, 0x8000]) == 230.5
    assert encode_point(volts, 230.5) == [0x4366, 0x8000]


def test_float32_reads_as_its_shortest_decimal_not_binary_noise() -> None:
    # 230.1 is 0x4366199A on the wire; struct alone gives 230.10000610351562
    assert struct.unpack(">f", bytes.fromhex("4366199a"))[0] != 230.1
    assert decode_point(point("float32", ValueKind.FLOAT), [0x4366, 0x199A]) == 230.1
    energy = decode_point(point("float32"), [0x4640, 0xE6AE])
    assert energy == Decimal("12345.67")
    assert isinstance(energy, Decimal)


def test_float32_word_swapped_and_byte_swapped() -> None:
    little_words = point("float32", ValueKind.FLOAT, word_order=Order.LITTLE)
    assert decode_point(little_words, [0x8000, 0x4366]) == 230.5
    assert encode_point(little_words, 230.5) == [0x8000, 0x4366]
    swapped_bytes = point("float32", ValueKind.FLOAT, byte_order=Order.LITTLE)
    assert decode_point(swapped_bytes, [0x6643, 0x0080]) == 230.5
    both = point("float32", ValueKind.FLOAT, word_order=Order.LITTLE, byte_order=Order.LITTLE)
    assert decode_point(both, [0x0080, 0x6643]) == 230.5  # DCBA, whole value little-endian


def test_float32_nan_is_a_point_problem() -> None:
    with pytest.raises(PointValueError, match="not a number"):
        decode_point(point("float32", ValueKind.FLOAT), [0x7FC0, 0x0000])
    assert float32_to_decimal(bytes.fromhex("7f800000")) is None  # +inf
    assert float32_to_decimal(bytes.fromhex("80000000")) == 0  # -0.0 reads as 0


def test_s16_negatives_with_exact_scale() -> None:
    # XY-MD02 manual: 0xFF33 = -205 -> -20.5 degC
    temperature = point("s16", scale=Decimal("0.1"))
    assert decode_point(temperature, [0xFF33]) == Decimal("-20.5")
    assert decode_point(temperature, [0x0131]) == Decimal("30.5")
    assert decode_point(point("s16", ValueKind.INT), [0xFFFF]) == -1
    assert decode_point(point("s16", ValueKind.INT), [0x8000]) == -32768
    assert encode_point(temperature, Decimal("-20.5")) == [0xFF33]
    assert encode_point(temperature, -20.5) == [0xFF33]


def test_u32_big_and_word_swapped() -> None:
    # 123456 = 0x0001E240
    big = point("u32", ValueKind.INT)
    assert decode_point(big, [0x0001, 0xE240]) == 123456
    swapped = point("u32", ValueKind.INT, word_order=Order.LITTLE)
    assert decode_point(swapped, [0xE240, 0x0001]) == 123456
    assert encode_point(swapped, 123456) == [0xE240, 0x0001]
    assert decode_point(point("s32", ValueKind.INT), [0xFFFE, 0x1DC0]) == -123456


def test_scale_and_offset_are_exact_decimals() -> None:
    energy = point("u32", scale=Decimal("0.01"))
    value = decode_point(energy, [0x0001, 0xE240])
    assert value == Decimal("1234.56")
    assert isinstance(value, Decimal)
    assert str(value) == "1234.56"  # not 1234.5600000000000591...
    # 0.1 + 0.2 style traps do not exist on this path
    tenths = point("u16", scale=Decimal("0.1"), offset=Decimal("0.2"))
    assert decode_point(tenths, [1]) == Decimal("0.3")
    # temperature with a -40 offset, as many sensors send it
    offset = point("u16", scale=Decimal("0.1"), offset=Decimal("-40"))
    assert decode_point(offset, [650]) == Decimal("25.0")
    assert encode_point(offset, Decimal("25.0")) == [650]
    # a float property still goes through the exact path, then becomes float
    kw = point("s32", ValueKind.FLOAT, scale=Decimal("-0.001"))
    assert decode_point(kw, [0x0000, 0x1388]) == -5.0


def test_enum_mapping_default_and_unknown_code() -> None:
    position = point("u16", ValueKind.ENUM, enum={0: "lowered", 1: "raised", 2: "moving"},
                     enum_default="unknown")
    assert decode_point(position, [1]) == "raised"
    assert decode_point(position, [7]) == "unknown"
    assert encode_point(position, "moving") == [2]
    assert encode_point(position, 2) == [2]  # a raw code that is in the map
    with pytest.raises(EncodeError, match="no enum value 'sideways'"):
        encode_point(position, "sideways")
    strict = point("u16", ValueKind.ENUM, enum={0: "none", 1: "stuck"})
    with pytest.raises(PointValueError, match="code 9 is not in its enum"):
        decode_point(strict, [9])


def test_bits_coils_and_register_flags() -> None:
    coil = point("bool", ValueKind.BOOL, function=Function.COIL)
    assert decode_point(coil, [True]) is True
    assert encode_point(coil, False) == [False]
    flag = point("u16", ValueKind.BOOL, bit=3)
    assert decode_point(flag, [0b1000]) is True
    assert decode_point(flag, [0b0111]) is False
    assert encode_point(flag, True, current=0b0001) == [0b1001]
    assert encode_point(flag, False, current=0xFFFF) == [0xFFF7]
    nonzero = point("u16", ValueKind.BOOL)
    assert decode_point(nonzero, [2]) is True
    assert encode_point(nonzero, True) == [1]
    with pytest.raises(EncodeError, match="true/false"):
        encode_point(nonzero, 1)


def test_int_kind_refuses_fractions() -> None:
    with pytest.raises(PointValueError, match="not an integer"):
        decode_point(point("u16", ValueKind.INT, scale=Decimal("0.5")), [3])


def test_encode_rounds_to_resolution_and_checks_range() -> None:
    tenths = point("u16", scale=Decimal("0.1"))
    assert encode_point(tenths, Decimal("230.14")) == [2301]
    assert encode_point(tenths, Decimal("0.05")) == [0]  # half to even
    assert encode_point(tenths, Decimal("0.15")) == [2]
    with pytest.raises(EncodeError, match="out of range"):
        encode_point(tenths, -1)
    with pytest.raises(EncodeError, match="out of range"):
        encode_point(point("s16", ValueKind.INT), 40000)
    with pytest.raises(EncodeError, match="out of float32 range"):
        encode_point(point("float32"), Decimal("1e40"))
    with pytest.raises(EncodeError, match="takes a number"):
        encode_point(tenths, True)
    with pytest.raises(EncodeError, match="takes a number"):
        encode_point(tenths, "lots")
    with pytest.raises(EncodeError, match="finite"):
        encode_point(tenths, float("nan"))


def test_register_byte_helpers_round_trip() -> None:
    data = bytes.fromhex("11223344")
    for words in Order:
        for order in Order:
            regs = bytes_to_registers(data, words, order)
            assert registers_to_bytes(regs, words, order) == data
    assert bytes_to_registers(data, Order.LITTLE, Order.LITTLE) == [0x4433, 0x2211]
