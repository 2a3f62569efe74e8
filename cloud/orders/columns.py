"""Exact decimal columns: ``Numeric(p, s)`` on PostgreSQL, an exact decimal string on SQLite.

SQLite has no decimal type (its NUMERIC affinity stores a REAL, and SQLAlchemy warns that it must
convert through float), so on SQLite the value is stored as its canonical decimal string with
exactly ``scale`` places. Values are never rounded on the way in: a value with more places than
the column holds is refused (the caller quantizes explicitly, with its own documented rule).
Nothing sorts or sums amounts in SQL, so the string form costs nothing.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class ExactDecimal(TypeDecorator[Decimal]):
    """A fixed-point decimal column with ``precision`` digits, ``scale`` of them after the point."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision, scale, asdecimal=True)
        self.precision = precision
        self.scale = scale
        self.quantum = Decimal(1).scaleb(-scale)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(self.precision + 2))
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def exact(self, value: Any) -> Decimal:
        """``value`` with exactly ``scale`` places, or ValueError when that would round it."""
        if isinstance(value, bool | float):
            raise TypeError(f"a decimal column takes Decimal/int/str, not {type(value).__name__}")
        try:
            dec = Decimal(value)
            quantized = dec.quantize(self.quantum)
        except InvalidOperation as exc:
            raise ValueError(f"{value!r} does not fit Numeric({self.precision}, "
                             f"{self.scale})") from exc
        if quantized != dec:
            raise ValueError(f"{value} has more than {self.scale} decimal places")
        if len(quantized.as_tuple().digits) > self.precision:
            raise ValueError(f"{value} has more than {self.precision} digits")
        return quantized

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        exact = self.exact(value)
        return str(exact) if dialect.name == "sqlite" else exact

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value)).quantize(self.quantum)


#: energy in kWh (0.1 Wh)
Energy = 18, 4
#: amounts in CNY (fen)
Amount = 18, 2
#: rates in CNY/kWh (YKC carries five places)
Rate = 18, 5
