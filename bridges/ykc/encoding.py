"""Primitive YKC data encodings: BIN, BCD, ASCII and CP56Time2a.

=============  ==============================================================
BIN            unsigned integer, little-endian (``225.1 V`` → 2251 → ``CB 08``)
BCD            packed, 2 digits per byte, most significant first, left-padded
               with zeros (``32010200000001`` → ``32 01 02 00 00 00 01``)
ASCII          right-padded with 0x00 to the field size
CP56Time2a     7 bytes, see :class:`Cp56Time2a`
=============  ==============================================================

BCD is decoded leniently: every nibble becomes one character of an uppercase
hexadecimal string, so a valid BCD field reads as plain digits while a field
with non-decimal nibbles (seen in the wild, e.g. ICCIDs such as
``898604D11722D0348606``) still decodes and re-encodes byte for byte.
ASCII fields are mapped through Latin-1 so that any byte string round-trips.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import ClassVar

from .errors import BodyError, EncodeError

__all__ = [
    "Cp56Time2a",
    "decode_ascii",
    "decode_bcd",
    "decode_bcd_int",
    "decode_uint",
    "encode_ascii",
    "encode_bcd",
    "encode_bcd_int",
    "encode_uint",
]

_HEX = frozenset(string.hexdigits)


def encode_uint(value: object, size: int, *, name: str = "value") -> bytes:
    """Encode an unsigned integer as ``size`` little-endian bytes."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise EncodeError(f"{name}: expected int, got {type(value).__name__}")
    if not 0 <= value < 1 << (8 * size):
        raise EncodeError(f"{name}: {value} does not fit in {size} unsigned byte(s)")
    return value.to_bytes(size, "little")


def decode_uint(data: bytes) -> int:
    """Decode a little-endian unsigned integer."""
    return int.from_bytes(data, "little")


def encode_bcd(digits: object, size: int, *, name: str = "value") -> bytes:
    """Encode a digit string as ``size`` bytes of packed BCD, left-padded with zeros.

    Hex digits A–F are accepted so that leniently decoded fields round-trip.
    """
    if not isinstance(digits, str):
        raise EncodeError(f"{name}: expected str, got {type(digits).__name__}")
    if len(digits) > 2 * size:
        raise EncodeError(f"{name}: {digits!r} is longer than {2 * size} digits")
    if not _HEX.issuperset(digits):
        raise EncodeError(f"{name}: {digits!r} is not a digit string")
    return bytes.fromhex(digits.rjust(2 * size, "0"))


def decode_bcd(data: bytes) -> str:
    """Decode packed BCD to a digit string (non-decimal nibbles appear as A–F)."""
    return data.hex().upper()


def encode_bcd_int(value: object, size: int, *, name: str = "value") -> bytes:
    """Encode an int as ``size`` bytes of packed BCD (strictly decimal)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise EncodeError(f"{name}: expected int, got {type(value).__name__}")
    if not 0 <= value < 10 ** (2 * size):
        raise EncodeError(f"{name}: {value} does not fit in {2 * size} BCD digits")
    return bytes.fromhex(f"{value:0{2 * size}d}")


def decode_bcd_int(data: bytes, *, name: str = "value") -> int:
    """Decode packed BCD to an int; non-decimal nibbles raise :class:`BodyError`."""
    text = data.hex()
    if not text.isdigit():
        raise BodyError(f"{name}: {text.upper()} is not valid BCD")
    return int(text)


def encode_ascii(text: object, size: int, *, reverse: bool = False, name: str = "value") -> bytes:
    """Encode text right-padded with 0x00 to ``size`` bytes (optionally byte-reversed)."""
    if not isinstance(text, str):
        raise EncodeError(f"{name}: expected str, got {type(text).__name__}")
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise EncodeError(f"{name}: {text!r} is not single-byte text") from exc
    if len(raw) > size:
        raise EncodeError(f"{name}: {text!r} is longer than {size} bytes")
    raw = raw.ljust(size, b"\x00")
    return raw[::-1] if reverse else raw


def decode_ascii(data: bytes, *, reverse: bool = False) -> str:
    """Decode 0x00-padded text (optionally stored byte-reversed)."""
    raw = data[::-1] if reverse else data
    return raw.rstrip(b"\x00").decode("latin-1")


@dataclass(frozen=True)
class Cp56Time2a:
    """IEC 60870-5 CP56Time2a timestamp, local (China) time, lossless.

    ::

        byte 0-1  milliseconds within the minute (0..59999), little-endian
        byte 2    bit 0-5 minute, bit 7 IV (invalid)
        byte 3    bit 0-4 hour,   bit 7 SU (summer time)
        byte 4    bit 0-4 day of month, bit 5-7 day of week (1=Mon..7=Sun, 0 unused)
        byte 5    bit 0-3 month
        byte 6    bit 0-6 year - 2000

    Decoding never fails (out-of-range values are kept as received); use
    :meth:`to_datetime` to get a :class:`~datetime.datetime` (``None`` when the
    fields do not form a valid date, e.g. an all-zero timestamp). Reserved bits
    are dropped and written as 0.
    """

    year: int
    month: int
    day: int
    hour: int
    minute: int
    milliseconds: int
    day_of_week: int = 0
    invalid: bool = False
    summer_time: bool = False

    SIZE: ClassVar[int] = 7

    @classmethod
    def from_datetime(cls, when: datetime, *, with_weekday: bool = False) -> Cp56Time2a:
        """Build from a (naive local) datetime; sub-millisecond precision is truncated."""
        return cls(
            year=when.year,
            month=when.month,
            day=when.day,
            hour=when.hour,
            minute=when.minute,
            milliseconds=when.second * 1000 + when.microsecond // 1000,
            day_of_week=when.isoweekday() if with_weekday else 0,
        )

    def to_datetime(self, tz: tzinfo | None = None) -> datetime | None:
        """Return the timestamp as a datetime (naive unless ``tz`` is given), or None."""
        second, millis = divmod(self.milliseconds, 1000)
        try:
            return datetime(
                self.year,
                self.month,
                self.day,
                self.hour,
                self.minute,
                second,
                millis * 1000,
                tzinfo=tz,
            )
        except ValueError:
            return None

    def encode(self) -> bytes:
        """Encode to 7 bytes; raises :class:`EncodeError` for values that do not fit."""
        limits = (
            ("milliseconds", self.milliseconds, 0, 0xFFFF),
            ("minute", self.minute, 0, 0x3F),
            ("hour", self.hour, 0, 0x1F),
            ("day", self.day, 0, 0x1F),
            ("day_of_week", self.day_of_week, 0, 7),
            ("month", self.month, 0, 0x0F),
            ("year", self.year, 2000, 2127),
        )
        for name, value, low, high in limits:
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise EncodeError(f"CP56Time2a {name}: {value!r} outside {low}..{high}")
        return bytes(
            (
                self.milliseconds & 0xFF,
                self.milliseconds >> 8,
                self.minute | (0x80 if self.invalid else 0),
                self.hour | (0x80 if self.summer_time else 0),
                self.day | (self.day_of_week << 5),
                self.month,
                self.year - 2000,
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> Cp56Time2a:
        """Decode 7 bytes (never fails for 7 bytes of input)."""
        if len(data) != cls.SIZE:
            raise BodyError(f"CP56Time2a needs 7 bytes, got {len(data)}")
        return cls(
            year=2000 + (data[6] & 0x7F),
            month=data[5] & 0x0F,
            day=data[4] & 0x1F,
            hour=data[3] & 0x1F,
            minute=data[2] & 0x3F,
            milliseconds=data[0] | data[1] << 8,
            day_of_week=data[4] >> 5,
            invalid=bool(data[2] & 0x80),
            summer_time=bool(data[3] & 0x80),
        )
