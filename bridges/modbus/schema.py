"""The shape of a register-map file, as pydantic models (unknown keys refused).

A register map describes one device model (one Modbus unit id): which points it exposes in
which register table, how each raw value becomes a thing-model value, and which writes
implement the thing model's services. Addresses are the 0-based protocol (PDU) addresses:
input register "30001" and holding register "40001" are ``address: 0``.

These models only check what one point or one write can check on its own; the loader
(:mod:`bridges.modbus.loader`) checks the rest (overlaps, references, the thing model).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

NAME_PATTERN = r"^[a-z][A-Za-z0-9]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Function(StrEnum):
    """The four Modbus data tables."""

    COIL = "coil"
    DISCRETE = "discrete"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def is_bit(self) -> bool:
        """Coils and discrete inputs hold bits; the other two hold 16-bit registers."""
        return self in (Function.COIL, Function.DISCRETE)

    @property
    def is_writable(self) -> bool:
        """Only coils and holding registers can be written by a client."""
        return self in (Function.COIL, Function.HOLDING)

    @property
    def read_code(self) -> int:
        """The function code that reads this table (1, 2, 3 or 4)."""
        return _READ_CODES[self]


_READ_CODES = {Function.COIL: 1, Function.DISCRETE: 2, Function.HOLDING: 3, Function.INPUT: 4}


class DataType(StrEnum):
    """How a point's raw value is laid out."""

    U16 = "u16"
    S16 = "s16"
    U32 = "u32"
    S32 = "s32"
    FLOAT32 = "float32"
    BOOL = "bool"  # one coil or discrete input

    @property
    def registers(self) -> int:
        """Width in 16-bit registers (0 for a bit)."""
        return _WIDTHS[self]

    @property
    def is_integer(self) -> bool:
        """A two's-complement or unsigned integer type."""
        return self in (DataType.U16, DataType.S16, DataType.U32, DataType.S32)


_WIDTHS = {
    DataType.U16: 1, DataType.S16: 1, DataType.U32: 2, DataType.S32: 2,
    DataType.FLOAT32: 2, DataType.BOOL: 0,
}


class Order(StrEnum):
    """Byte order inside a register, or word order across the registers of a value."""

    BIG = "big"
    LITTLE = "little"


class Strict(BaseModel):
    """Base of every file model: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PointSpec(Strict):
    """One value the device exposes.

    ``property`` defaults to the point's own name; ``property: null`` declares a point that
    feeds no property (a command register that services write).
    """

    function: Function
    address: int = Field(ge=0, le=0xFFFF)
    type: DataType
    word_order: Order | None = None
    byte_order: Order | None = None
    bit: int | None = Field(default=None, ge=0, le=15)
    scale: Decimal = Decimal(1)
    offset: Decimal = Decimal(0)
    unit: str | None = None
    property: Name | None = None
    enum: dict[StrictInt, Annotated[str, Field(min_length=1)]] | None = None
    enum_default: str | None = None
    deadband: Decimal | None = Field(default=None, ge=0)
    description: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PointSpec:
        bit_table = self.function.is_bit
        if bit_table != (self.type is DataType.BOOL):
            raise ValueError(
                f"{self.function} points must have type bool" if bit_table
                else "type bool is only for coil and discrete points (use 'bit' for a flag "
                     "inside a register)"
            )
        if self.word_order is not None and self.type.registers < 2:
            raise ValueError("'word_order' is only for 32-bit types")
        if self.byte_order is not None and bit_table:
            raise ValueError("'byte_order' is only for registers")
        if self.bit is not None and self.type is not DataType.U16:
            raise ValueError("'bit' needs type u16")
        if self.scale == 0:
            raise ValueError("'scale' must not be 0")
        plain = self.type is DataType.BOOL or self.bit is not None or self.enum is not None
        if plain and {"scale", "offset"} & self.model_fields_set:
            raise ValueError("'scale'/'offset' make no sense for a bool, bit or enum point")
        if self.enum is not None:
            if self.type is DataType.FLOAT32 or self.bit is not None:
                raise ValueError("'enum' needs an integer or bool point")
            if len(set(self.enum.values())) != len(self.enum):
                raise ValueError("'enum' maps two codes to the same name")
        if self.enum_default is not None and self.enum is None:
            raise ValueError("'enum_default' needs 'enum'")
        if self.deadband is not None and plain:
            raise ValueError("'deadband' is only for numeric points")
        if self.address + max(self.type.registers, 1) > 0x10000:
            raise ValueError("the point runs past address 0xFFFF")
        return self


class WriteSpec(Strict):
    """One write of a service: a named point, or a raw holding register / coil.

    ``value`` is a constant in the point's units (an enum name for an enum point); ``input``
    names a service input whose value is written instead. Raw writes take a raw ``value``:
    0..65535 for a holding register, true/false for a coil.
    """

    point: Name | None = None
    function: Function | None = None
    address: int | None = Field(default=None, ge=0, le=0xFFFF)
    value: StrictBool | StrictInt | Decimal | str | None = None
    input: Name | None = None
    optional: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> WriteSpec:
        raw = self.function is not None or self.address is not None
        if raw == (self.point is not None):
            raise ValueError("give either 'point' or 'function' + 'address'")
        if raw:
            if self.function is None or self.address is None:
                raise ValueError("a raw write needs both 'function' and 'address'")
            if not self.function.is_writable:
                raise ValueError(f"{self.function} cannot be written (only holding and coil)")
            if self.input is not None:
                raise ValueError("'input' needs a 'point' (it gives the type and scale)")
            if self.function is Function.COIL and not isinstance(self.value, bool):
                raise ValueError("a raw coil write needs value true or false")
            if self.function is Function.HOLDING and not (
                isinstance(self.value, int) and not isinstance(self.value, bool)
                and 0 <= self.value <= 0xFFFF
            ):
                raise ValueError("a raw holding write needs a value 0..65535")
        if (self.value is None) == (self.input is None):
            raise ValueError("give either 'value' or 'input'")
        if self.optional and self.input is None:
            raise ValueError("'optional' is only for writes that take an 'input'")
        return self


class ServiceSpec(Strict):
    """A thing-model service implemented as register/coil writes, in order.

    A device recognises the call by its last write (the command), so put parameters first.
    """

    description: str | None = None
    writes: list[WriteSpec] = Field(min_length=1)


class ReadLimits(Strict):
    """How the poller may group reads for this device."""

    max_registers: int = Field(default=125, ge=1, le=125)
    max_bits: int = Field(default=2000, ge=1, le=2000)
    max_gap_registers: int = Field(default=8, ge=0)
    max_gap_bits: int = Field(default=32, ge=0)


class RegisterMapFile(Strict):
    """The whole file."""

    product: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=1)
    vendor: str = Field(min_length=1)
    description: str | None = None
    reference: str | None = None
    default_device_id: int = Field(default=1, ge=1, le=247)
    byte_order: Order = Order.BIG
    word_order: Order = Order.BIG
    read: ReadLimits = ReadLimits()
    write_multiple: bool = False
    points: dict[Name, PointSpec] = Field(min_length=1)
    services: dict[Name, ServiceSpec] = {}

