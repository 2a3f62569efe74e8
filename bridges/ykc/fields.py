"""Declarative body layouts: field codecs, ``Annotated`` aliases and the struct codec.

A frame body is a frozen dataclass whose fields are annotated with a codec::

    @dataclass(frozen=True)
    class Heartbeat(Message):
        pile_code: PileCode        # Annotated[str, Bcd(7)]
        gun: Gun                   # Annotated[int, BcdInt(1)]
        gun_status: U8             # Annotated[int, UInt(1)]

:func:`decode_struct` and :func:`encode_struct` walk the fields in declaration
order, so the dataclass *is* the wire layout (no hand-written offsets).
Decoding never raises anything but :class:`~bridges.ykc.errors.BodyError`;
encoding validates every value and raises
:class:`~bridges.ykc.errors.EncodeError`.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar, cast

from .encoding import (
    Cp56Time2a,
    decode_ascii,
    decode_bcd,
    decode_bcd_int,
    decode_uint,
    encode_ascii,
    encode_bcd,
    encode_bcd_int,
    encode_uint,
)
from .errors import BadBodyLength, EncodeError

__all__ = [
    "U8",
    "U16",
    "U24",
    "U32",
    "U40",
    "U64",
    "Array",
    "Ascii",
    "Bcd",
    "BcdInt",
    "Card",
    "Counted",
    "Cp56",
    "Cp56Codec",
    "FieldCodec",
    "Gun",
    "LogicalCard",
    "ModelCode",
    "ParallelId",
    "PileCode",
    "Raw",
    "Reader",
    "Remainder",
    "Struct",
    "TradeNo",
    "UInt",
    "decode_struct",
    "encode_struct",
    "struct_size",
    "struct_spec",
]

T = TypeVar("T")
S = TypeVar("S")


class Reader:
    """Cursor over a body; short reads raise :class:`BadBodyLength`."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, size: int) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise BadBodyLength(
                f"body too short: need {end} bytes at least, have {len(self._data)}"
            )
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def expect_end(self) -> None:
        if self.remaining:
            raise BadBodyLength(
                f"body too long: {self.remaining} unexpected trailing byte(s) "
                f"after {self._pos} bytes"
            )


class FieldCodec(Generic[T]):
    """Encodes/decodes one field. ``size`` is the fixed byte size or None if variable."""

    size: int | None = None

    def read(self, reader: Reader) -> T:
        raise NotImplementedError

    def write(self, value: object, out: bytearray, name: str) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__


class UInt(FieldCodec[int]):
    """BIN: unsigned little-endian integer of ``size`` bytes."""

    def __init__(self, size: int) -> None:
        self.size = size

    def read(self, reader: Reader) -> int:
        return decode_uint(reader.take(self._size))

    def write(self, value: object, out: bytearray, name: str) -> None:
        out += encode_uint(value, self._size, name=name)

    @property
    def _size(self) -> int:
        return cast(int, self.size)

    def describe(self) -> str:
        return f"BIN{self.size}"


class Bcd(FieldCodec[str]):
    """BCD digit string of ``size`` bytes (``2*size`` characters, lenient: A–F kept).

    Also used for 8-byte BIN card numbers, which the spec writes as left-padded
    hex (``00000000D14B0A54``): the representation is identical.
    """

    def __init__(self, size: int) -> None:
        self.size = size

    def read(self, reader: Reader) -> str:
        return decode_bcd(reader.take(cast(int, self.size)))

    def write(self, value: object, out: bytearray, name: str) -> None:
        out += encode_bcd(value, cast(int, self.size), name=name)

    def describe(self) -> str:
        return f"BCD{self.size}"


class BcdInt(FieldCodec[int]):
    """BCD number decoded to int (strict: non-decimal nibbles are a body error)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def read(self, reader: Reader) -> int:
        return decode_bcd_int(reader.take(cast(int, self.size)))

    def write(self, value: object, out: bytearray, name: str) -> None:
        out += encode_bcd_int(value, cast(int, self.size), name=name)

    def describe(self) -> str:
        return f"BCD{self.size}(int)"


class Ascii(FieldCodec[str]):
    """0x00-padded text of ``size`` bytes; ``reverse`` for the byte-reversed VIN of 0x31/0xA1."""

    def __init__(self, size: int, *, reverse: bool = False) -> None:
        self.size = size
        self.reverse = reverse

    def read(self, reader: Reader) -> str:
        return decode_ascii(reader.take(cast(int, self.size)), reverse=self.reverse)

    def write(self, value: object, out: bytearray, name: str) -> None:
        out += encode_ascii(value, cast(int, self.size), reverse=self.reverse, name=name)

    def describe(self) -> str:
        return f"ASCII{self.size}" + ("(reversed)" if self.reverse else "")


class Raw(FieldCodec[bytes]):
    """Opaque bytes of exactly ``size`` bytes."""

    def __init__(self, size: int) -> None:
        self.size = size

    def read(self, reader: Reader) -> bytes:
        return bytes(reader.take(cast(int, self.size)))

    def write(self, value: object, out: bytearray, name: str) -> None:
        if not isinstance(value, bytes | bytearray):
            raise EncodeError(f"{name}: expected bytes, got {type(value).__name__}")
        if len(value) != self.size:
            raise EncodeError(f"{name}: expected {self.size} bytes, got {len(value)}")
        out += value

    def describe(self) -> str:
        return f"RAW{self.size}"


class Cp56Codec(FieldCodec[Cp56Time2a]):
    """CP56Time2a (7 bytes)."""

    size = Cp56Time2a.SIZE

    def read(self, reader: Reader) -> Cp56Time2a:
        return Cp56Time2a.decode(reader.take(Cp56Time2a.SIZE))

    def write(self, value: object, out: bytearray, name: str) -> None:
        if not isinstance(value, Cp56Time2a):
            raise EncodeError(f"{name}: expected Cp56Time2a, got {type(value).__name__}")
        out += value.encode()

    def describe(self) -> str:
        return "CP56Time2a"


class Struct(FieldCodec[S]):
    """A nested dataclass, laid out inline."""

    def __init__(self, cls: type[S]) -> None:
        self.cls = cls
        self.size = struct_size(cls)

    def read(self, reader: Reader) -> S:
        return _read_struct(self.cls, reader)

    def write(self, value: object, out: bytearray, name: str) -> None:
        if not isinstance(value, self.cls):
            raise EncodeError(f"{name}: expected {self.cls.__name__}, got {type(value).__name__}")
        _write_struct(value, out, name)

    def describe(self) -> str:
        return self.cls.__name__


def _as_items(value: object, name: str) -> Sequence[object]:
    if not isinstance(value, tuple | list):
        raise EncodeError(f"{name}: expected a tuple, got {type(value).__name__}")
    return value


class Array(FieldCodec[tuple[T, ...]]):
    """Exactly ``count`` consecutive items."""

    def __init__(self, item: FieldCodec[T], count: int) -> None:
        self.item = item
        self.count = count
        self.size = None if item.size is None else item.size * count

    def read(self, reader: Reader) -> tuple[T, ...]:
        return tuple(self.item.read(reader) for _ in range(self.count))

    def write(self, value: object, out: bytearray, name: str) -> None:
        items = _as_items(value, name)
        if len(items) != self.count:
            raise EncodeError(f"{name}: expected {self.count} items, got {len(items)}")
        for index, item in enumerate(items):
            self.item.write(item, out, f"{name}[{index}]")

    def describe(self) -> str:
        return f"{self.count}x{self.item.describe()}"


class Counted(FieldCodec[tuple[T, ...]]):
    """A 1-byte BIN item count followed by that many items (at most ``max_count`` on encode)."""

    def __init__(self, item: FieldCodec[T], max_count: int) -> None:
        self.item = item
        self.max_count = max_count

    def read(self, reader: Reader) -> tuple[T, ...]:
        count = reader.take(1)[0]
        return tuple(self.item.read(reader) for _ in range(count))

    def write(self, value: object, out: bytearray, name: str) -> None:
        items = _as_items(value, name)
        if len(items) > self.max_count:
            raise EncodeError(f"{name}: at most {self.max_count} items, got {len(items)}")
        out.append(len(items))
        for index, item in enumerate(items):
            self.item.write(item, out, f"{name}[{index}]")

    def describe(self) -> str:
        return f"N(BIN1)+Nx{self.item.describe()}"


class Remainder(FieldCodec[tuple[T, ...]]):
    """Items until the end of the body (no count byte); at most ``max_count`` on encode."""

    def __init__(self, item: FieldCodec[T], max_count: int) -> None:
        if not item.size:
            raise TypeError("Remainder needs a fixed-size item")
        self.item = item
        self.max_count = max_count

    def read(self, reader: Reader) -> tuple[T, ...]:
        items: list[T] = []
        while reader.remaining:
            items.append(self.item.read(reader))
        return tuple(items)

    def write(self, value: object, out: bytearray, name: str) -> None:
        items = _as_items(value, name)
        if len(items) > self.max_count:
            raise EncodeError(f"{name}: at most {self.max_count} items, got {len(items)}")
        for index, item in enumerate(items):
            self.item.write(item, out, f"{name}[{index}]")

    def describe(self) -> str:
        return f"Nx{self.item.describe()}"


# --- Annotated aliases used by the message dataclasses --------------------------------

U8 = Annotated[int, UInt(1)]
U16 = Annotated[int, UInt(2)]
U24 = Annotated[int, UInt(3)]
U32 = Annotated[int, UInt(4)]
U40 = Annotated[int, UInt(5)]
U64 = Annotated[int, UInt(8)]
PileCode = Annotated[str, Bcd(7)]
"""Pile code: 14 BCD digits."""
TradeNo = Annotated[str, Bcd(16)]
"""Trade (transaction) number: 32 BCD digits."""
Gun = Annotated[int, BcdInt(1)]
"""Gun (connector) number: 1 BCD byte, as int."""
ModelCode = Annotated[str, Bcd(2)]
"""Billing-model code: 4 BCD digits."""
LogicalCard = Annotated[str, Bcd(8)]
"""Logical (printed) card number: 16 BCD digits."""
Card = Annotated[str, Bcd(8)]
"""Physical card / account number: 8 BIN bytes shown as 16 uppercase hex characters."""
ParallelId = Annotated[str, Bcd(6)]
"""Parallel-charging session id ``YYMMDDhhmmss``: 12 BCD digits."""
Cp56 = Annotated[Cp56Time2a, Cp56Codec()]


# --- struct machinery -------------------------------------------------------------------

_Spec = tuple[tuple[str, FieldCodec[Any]], ...]
_SPECS: dict[type, _Spec] = {}


def struct_spec(cls: type) -> _Spec:
    """Return ``((field_name, codec), ...)`` for a layout dataclass (cached)."""
    spec = _SPECS.get(cls)
    if spec is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        entries: list[tuple[str, FieldCodec[Any]]] = []
        for field in dataclasses.fields(cls):
            codecs = [
                m
                for m in getattr(hints[field.name], "__metadata__", ())
                if isinstance(m, FieldCodec)
            ]
            if len(codecs) != 1:
                raise TypeError(f"{cls.__name__}.{field.name} needs exactly one FieldCodec")
            entries.append((field.name, codecs[0]))
        spec = tuple(entries)
        _SPECS[cls] = spec
    return spec


def struct_size(cls: type) -> int | None:
    """Fixed byte size of a layout dataclass, or None if it has variable-size fields."""
    total = 0
    for _, codec in struct_spec(cls):
        if codec.size is None:
            return None
        total += codec.size
    return total


def _read_struct(cls: type[S], reader: Reader) -> S:
    values = [codec.read(reader) for _, codec in struct_spec(cls)]
    factory = cast(Callable[..., S], cls)
    return factory(*values)


def _write_struct(obj: object, out: bytearray, prefix: str = "") -> None:
    for name, codec in struct_spec(type(obj)):
        codec.write(getattr(obj, name), out, f"{prefix}.{name}" if prefix else name)


def decode_struct(cls: type[S], data: bytes) -> S:
    """Decode ``data`` as exactly one ``cls`` (trailing bytes are a :class:`BadBodyLength`)."""
    reader = Reader(data)
    value = _read_struct(cls, reader)
    reader.expect_end()
    return value


def encode_struct(obj: object) -> bytes:
    """Encode a layout dataclass instance."""
    out = bytearray()
    _write_struct(obj, out, type(obj).__name__)
    return bytes(out)
