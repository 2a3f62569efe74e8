"""One point's raw registers or bit <-> its thing-model value. Pure functions.

Numbers go through :class:`~decimal.Decimal` only: ``value = raw * scale + offset`` is exact,
and a float32 register pair is first read as the shortest decimal that round-trips the
float32 (``0x4366 0x199A`` is 230.1, not 230.10000610351562). ``decimal`` properties come
out as Decimal, ``float`` properties as float, ``int`` as int, ``bool`` as bool, ``enum``
as the enum name.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from bridges.modbus.errors import EncodeError, PointValueError
from bridges.modbus.regmap import Point, PropertyValue, ValueKind
from bridges.modbus.schema import DataType, Order

__all__ = [
    "bytes_to_registers",
    "decode_point",
    "encode_point",
    "float32_to_decimal",
    "raw_of",
    "registers_to_bytes",
]

_STRUCT = {
    DataType.U16: ">H", DataType.S16: ">h", DataType.U32: ">I", DataType.S32: ">i",
    DataType.FLOAT32: ">f",
}
_RANGE = {
    DataType.U16: (0, 0xFFFF), DataType.S16: (-0x8000, 0x7FFF),
    DataType.U32: (0, 0xFFFF_FFFF), DataType.S32: (-0x8000_0000, 0x7FFF_FFFF),
}


def registers_to_bytes(registers: Sequence[int], word_order: Order = Order.BIG,
                       byte_order: Order = Order.BIG) -> bytes:
    """Registers as sent on the wire -> the value's big-endian bytes."""
    words = list(reversed(registers)) if word_order is Order.LITTLE else list(registers)
    out = bytearray()
    for word in words:
        pair = word.to_bytes(2, "big")
        out += pair[::-1] if byte_order is Order.LITTLE else pair
    return bytes(out)


def bytes_to_registers(data: bytes, word_order: Order = Order.BIG,
                       byte_order: Order = Order.BIG) -> list[int]:
    """A value's big-endian bytes -> registers as sent on the wire (inverse of the above)."""
    words = []
    for i in range(0, len(data), 2):
        pair = data[i:i + 2]
        words.append(int.from_bytes(pair[::-1] if byte_order is Order.LITTLE else pair, "big"))
    return list(reversed(words)) if word_order is Order.LITTLE else words


def float32_to_decimal(data: bytes) -> Decimal | None:
    """The shortest decimal that reads back as the same float32; None for NaN/infinity."""
    (number,) = struct.unpack(">f", data)
    if not math.isfinite(number):
        return None
    if number == 0:
        return Decimal(0)
    for digits in range(1, 10):
        text = f"{number:.{digits}g}"
        if struct.pack(">f", float(text)) == data:
            return Decimal(text)
    return Decimal(number)  # pragma: no cover - 9 significant digits always round-trip


def raw_of(point: Point, data: Sequence[int] | Sequence[bool]) -> int | bool | Decimal:
    """The raw value: bool for bits and flags, int for integers, Decimal for float32."""
    if point.type is DataType.BOOL:
        return bool(data[0])
    registers = [int(x) for x in data[:point.width]]
    raw = registers_to_bytes(registers, point.word_order, point.byte_order)
    if point.type is DataType.FLOAT32:
        number = float32_to_decimal(raw)
        if number is None:
            raise PointValueError(point.name, f"float32 is not a number ({raw.hex()})")
        return number
    (integer,) = struct.unpack(_STRUCT[point.type], raw)
    if point.bit is not None:
        return bool((integer >> point.bit) & 1)
    return int(integer)


def decode_point(point: Point, data: Sequence[int] | Sequence[bool]) -> PropertyValue:
    """A point's registers (``point.width`` of them) or its bit -> its thing-model value."""
    raw = raw_of(point, data)
    if point.kind is ValueKind.ENUM:
        assert point.enum is not None
        name = point.enum.get(int(raw))
        if name is None:
            if point.enum_default is None:
                raise PointValueError(point.name, f"code {int(raw)} is not in its enum")
            return point.enum_default
        return name
    if point.kind is ValueKind.BOOL:
        return bool(raw)
    value = Decimal(raw) * point.scale + point.offset
    if point.kind is ValueKind.FLOAT:
        return float(value)
    if point.kind is ValueKind.INT:
        if value != value.to_integral_value():
            raise PointValueError(point.name, f"{value} is not an integer")
        return int(value)
    return value


def _as_decimal(point: Point, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise EncodeError(f"point {point.name!r} takes a number, not {value!r}")
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise EncodeError(f"point {point.name!r} takes a number, not {value!r}") from None
    if not number.is_finite():
        raise EncodeError(f"point {point.name!r} takes a finite number, not {value!r}")
    return number


def _raw_integer(point: Point, value: object) -> int:
    """The raw integer an int/bool/enum point stores for ``value``."""
    if point.kind is ValueKind.ENUM:
        assert point.enum is not None
        for code, name in point.enum.items():
            if value == name or (type(value) is int and value == code):
                return code
        raise EncodeError(f"point {point.name!r} has no enum value {value!r} "
                          f"(known: {', '.join(point.enum.values())})")
    if point.kind is ValueKind.BOOL:
        if not isinstance(value, bool):
            raise EncodeError(f"point {point.name!r} takes true/false, not {value!r}")
        return int(value)
    raw = (_as_decimal(point, value) - point.offset) / point.scale
    return int(raw.to_integral_value(rounding=ROUND_HALF_EVEN))


def encode_point(point: Point, value: object, current: int = 0) -> list[int] | list[bool]:
    """A thing-model value -> the point's registers (or its one bit).

    Integer points round to their resolution (half to even) and refuse values outside
    the type's range. A ``bit`` point needs the register's ``current`` value and returns
    it with the bit changed.
    """
    if point.type is DataType.BOOL:
        return [bool(_raw_integer(point, value))]
    if point.bit is not None:
        flag = _raw_integer(point, value)
        mask = 1 << point.bit
        return [(current | mask) if flag else (current & ~mask & 0xFFFF)]
    if point.type is DataType.FLOAT32:
        if point.kind in (ValueKind.BOOL, ValueKind.ENUM):  # pragma: no cover - refused at load
            raise EncodeError(f"point {point.name!r} cannot hold {value!r}")
        raw_number = (_as_decimal(point, value) - point.offset) / point.scale
        try:
            data = struct.pack(">f", float(raw_number))
        except OverflowError:
            raise EncodeError(f"{value!r} is out of float32 range for {point.name!r}") from None
        return bytes_to_registers(data, point.word_order, point.byte_order)
    raw = _raw_integer(point, value)
    low, high = _RANGE[point.type]
    if not low <= raw <= high:
        raise EncodeError(f"{value!r} is out of range for point {point.name!r} "
                          f"({point.type}: raw {raw} not in {low}..{high})")
    return bytes_to_registers(struct.pack(_STRUCT[point.type], raw), point.word_order,
                              point.byte_order)
