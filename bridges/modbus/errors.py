"""The exception tree of :mod:`bridges.modbus`.

::

    ModbusBridgeError                    base of everything raised here
    ├── RegisterMapError                 invalid register-map file (also a thingmodels
    │                                    ModelFileError: .file, .path, .line)
    ├── UnknownName (LookupError)        no such point, property or service in the map
    ├── DecodeError                      a register/bit block cannot be decoded at all
    │   └── PointValueError              one point's raw value has no meaning (NaN, enum
    │                                    code not mapped, non-integral int); decode_* report
    │                                    these as PointProblem instead of raising
    └── EncodeError (ValueError)         a value or service input cannot be written
"""

from __future__ import annotations

from thingmodels.errors import ModelFileError

__all__ = [
    "DecodeError",
    "EncodeError",
    "ModbusBridgeError",
    "PointValueError",
    "RegisterMapError",
    "UnknownName",
]


class ModbusBridgeError(Exception):
    """Base class of every error raised by :mod:`bridges.modbus`."""


class RegisterMapError(ModbusBridgeError, ModelFileError):
    """A register-map file is invalid; names the file, the path inside it and the line."""

    def __init__(self, file: str, path: str, message: str, line: int | None = None) -> None:
        ModelFileError.__init__(self, file, path, message, line)


class UnknownName(ModbusBridgeError, LookupError):
    """A point, property or service that the register map does not declare."""


class DecodeError(ModbusBridgeError):
    """A block of registers or bits that cannot be decoded (wrong size, not 16-bit words)."""


class PointValueError(DecodeError):
    """One point's raw value cannot be turned into a thing-model value."""

    def __init__(self, point: str, reason: str) -> None:
        super().__init__(f"point {point!r}: {reason}")
        self.point = point
        self.reason = reason


class EncodeError(ModbusBridgeError, ValueError):
    """A value cannot be represented in a point, or a service call lacks an input."""
