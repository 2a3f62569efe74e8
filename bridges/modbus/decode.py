"""Decode a read's registers or bits into thing-model property values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bridges.modbus.codec import decode_point
from bridges.modbus.errors import DecodeError, PointValueError
from bridges.modbus.plan import ReadRequest
from bridges.modbus.regmap import Point, PropertyValue, RegisterMap
from bridges.modbus.schema import Function

__all__ = ["Decoded", "PointProblem", "decode_block", "decode_response"]


@dataclass(frozen=True)
class PointProblem:
    """A point whose raw value has no meaning (NaN, unmapped enum code ...)."""

    point: str
    property: str | None
    reason: str


@dataclass(frozen=True)
class Decoded:
    """Property values decoded from a block, plus the points that could not be."""

    values: dict[str, PropertyValue]
    problems: tuple[PointProblem, ...] = ()


def decode_block(regmap: RegisterMap, function: Function, address: int,
                 data: Sequence[int] | Sequence[bool]) -> Decoded:
    """Decode every property point of ``function`` lying wholly inside the block.

    ``data`` holds 16-bit registers (holding/input) or bits (coil/discrete) starting at
    ``address``. Give bits exactly as many as were asked for: pymodbus pads bit responses
    to whole bytes, and a padding bit would decode as a real False.
    """
    _check(function, address, data)
    end = address + len(data)
    points = [p for p in regmap.readable(function) if p.address >= address and p.end <= end]
    return _decode(points, address, data)


def decode_response(regmap: RegisterMap, request: ReadRequest,
                    data: Sequence[int] | Sequence[bool]) -> Decoded:
    """Decode the answer to a planned read (bit padding beyond ``request.count`` dropped)."""
    if len(data) < request.count:
        raise DecodeError(f"{request.function} read at 0x{request.address:04X} asked for "
                          f"{request.count} and got {len(data)}")
    block = data[:request.count]
    _check(request.function, request.address, block)
    return _decode([regmap.point(name) for name in request.points], request.address, block)


def _check(function: Function, address: int, data: Sequence[int] | Sequence[bool]) -> None:
    if address < 0 or address + len(data) > 0x10000:
        raise DecodeError(f"block 0x{address:04X}+{len(data)} is outside the address space")
    if function.is_bit:
        if any(x not in (0, 1) for x in data):
            raise DecodeError(f"{function} data must be bits")
    elif any(isinstance(x, bool) or not isinstance(x, int) or not 0 <= x <= 0xFFFF
             for x in data):
        raise DecodeError(f"{function} data must be 16-bit registers (0..65535)")


def _decode(points: Iterable[Point], address: int,
            data: Sequence[int] | Sequence[bool]) -> Decoded:
    values: dict[str, PropertyValue] = {}
    problems: list[PointProblem] = []
    for point in points:
        if point.property is None:
            continue
        offset = point.address - address
        try:
            values[point.property] = decode_point(point, data[offset:offset + point.width])
        except PointValueError as exc:
            problems.append(PointProblem(point.name, point.property, exc.reason))
    return Decoded(values, tuple(problems))
