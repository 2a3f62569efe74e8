"""A loaded register map: points and services resolved, ready for the pure codec.

Built by :func:`bridges.modbus.loader.load_register_map`; every default is applied and every
point knows the thing-model kind of value it produces.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from bridges.modbus.errors import UnknownName
from bridges.modbus.schema import DataType, Function, Order, ReadLimits

__all__ = ["Point", "PropertyValue", "RegisterMap", "Service", "ValueKind", "Write"]

PropertyValue = bool | int | float | Decimal | str
"""A value in thing-model terms: bool, int, float, exact Decimal, or an enum name."""


class ValueKind(StrEnum):
    """The Python type a point produces, from the thing model's property type."""

    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    DECIMAL = "decimal"
    ENUM = "enum"


@dataclass(frozen=True, eq=False)
class Point:
    """One point with every default applied."""

    name: str
    function: Function
    address: int
    type: DataType
    kind: ValueKind
    property: str | None
    word_order: Order = Order.BIG
    byte_order: Order = Order.BIG
    scale: Decimal = Decimal(1)
    offset: Decimal = Decimal(0)
    unit: str | None = None
    bit: int | None = None
    enum: Mapping[int, str] | None = None
    enum_default: str | None = None
    deadband: Decimal | None = None
    writable: bool = False

    @builtins.property
    def width(self) -> int:
        """Registers (or bits, for a coil/discrete point) the point occupies."""
        return self.type.registers or 1

    @builtins.property
    def end(self) -> int:
        """The first address after the point."""
        return self.address + self.width

    def describe(self) -> str:
        """``input 0x0000..0x0001 (float32)`` for messages."""
        last = f"..0x{self.end - 1:04X}" if self.width > 1 else ""
        bit = f" bit {self.bit}" if self.bit is not None else ""
        return f"{self.function} 0x{self.address:04X}{last}{bit} ({self.type})"


@dataclass(frozen=True, eq=False)
class Write:
    """One write of a service.

    ``point`` is None for a raw write, which then carries ``function``, ``address`` and a raw
    ``value``. Otherwise ``value`` (in the point's units) or ``input`` gives what is written.
    """

    function: Function
    address: int
    point: Point | None = None
    value: PropertyValue | None = None
    input: str | None = None
    optional: bool = False

    @property
    def width(self) -> int:
        """Registers or coils written."""
        return self.point.width if self.point is not None else 1


@dataclass(frozen=True, eq=False)
class Service:
    """A service as an ordered list of writes; the last one is the command."""

    name: str
    writes: tuple[Write, ...]

    @property
    def inputs(self) -> tuple[str, ...]:
        """The service inputs its writes consume."""
        return tuple(w.input for w in self.writes if w.input is not None)


@dataclass(frozen=True, eq=False)
class RegisterMap:
    """A device model's register map."""

    product: str
    name: str
    vendor: str
    points: Mapping[str, Point]
    services: Mapping[str, Service] = field(default_factory=dict)
    limits: ReadLimits = field(default_factory=ReadLimits)
    write_multiple: bool = False
    default_device_id: int = 1
    description: str | None = None
    reference: str | None = None
    file: str | None = None
    has_thing_model: bool = True

    def point(self, name: str) -> Point:
        """A point by its name."""
        try:
            return self.points[name]
        except KeyError:
            raise UnknownName(f"{self.name}: no point {name!r}") from None

    def point_for(self, prop: str) -> Point:
        """The point that feeds a thing-model property."""
        for point in self.points.values():
            if point.property == prop:
                return point
        raise UnknownName(f"{self.name}: no point feeds property {prop!r}")

    def service(self, name: str) -> Service:
        """A service by its thing-model name."""
        try:
            return self.services[name]
        except KeyError:
            raise UnknownName(f"{self.name}: no service {name!r}") from None

    @property
    def properties(self) -> tuple[str, ...]:
        """Every property the map feeds, in file order."""
        return tuple(p.property for p in self.points.values() if p.property is not None)

    def readable(self, function: Function | None = None) -> Iterator[Point]:
        """Points that feed a property (optionally of one table), in file order."""
        for point in self.points.values():
            if point.property is not None and (function is None or point.function is function):
                yield point
