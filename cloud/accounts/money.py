"""Money as :class:`~decimal.Decimal` with two places: parsing and the SQL column type.

No float ever becomes money: :func:`to_money` refuses floats, NaN, infinities and amounts with
more than two decimal places (rounding someone's money silently is a bug, not a convenience).

The column type :class:`Money` is ``NUMERIC(18, 2)`` on PostgreSQL. SQLite has no exact decimal
(SQLAlchemy's ``Numeric`` goes through a float there), so on SQLite the same column stores integer
minor units (fen) and converts on the way in and out: exact on both, same Python type.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import BigInteger, Numeric
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from cloud.accounts.errors import InvalidInput

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
#: NUMERIC(18, 2): 16 digits before the point
MAX_ABS = Decimal("9999999999999999.99")


def to_money(value: Any, *, what: str = "amount") -> Decimal:
    """``value`` (Decimal, int or decimal string) as a Decimal with exactly two places.

    Raises :class:`InvalidInput` for floats, bools, non-numbers, more than two decimal places
    and values beyond ``NUMERIC(18, 2)``.
    """
    if isinstance(value, (bool, float)):
        raise InvalidInput(f"{what}: {value!r} is a float; send money as a decimal string")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidInput(f"{what}: {value!r} is not a decimal number") from None
    else:
        raise InvalidInput(f"{what}: {type(value).__name__} is not money")
    if not amount.is_finite():
        raise InvalidInput(f"{what}: {value!r} is not a finite number")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2 and amount != amount.quantize(CENT):
        raise InvalidInput(f"{what}: {value!r} has more than two decimal places")
    amount = amount.quantize(CENT)
    if abs(amount) > MAX_ABS:
        raise InvalidInput(f"{what}: {value!r} is out of range")
    return amount


def to_positive_money(value: Any, *, what: str = "amount") -> Decimal:
    """:func:`to_money`, and greater than zero."""
    amount = to_money(value, what=what)
    if amount <= 0:
        raise InvalidInput(f"{what}: must be greater than zero, got {amount}")
    return amount


def fen(amount: Decimal) -> int:
    """An amount in integer minor units (1 CNY = 100 fen)."""
    return int(to_money(amount) * 100)


def from_fen(value: int) -> Decimal:
    """Integer minor units as money."""
    return (Decimal(int(value)) / 100).quantize(CENT)


class Money(TypeDecorator[Decimal]):
    """``NUMERIC(18, 2)`` on PostgreSQL, integer fen on SQLite; always a 2-place Decimal in Python."""

    impl = Numeric(18, 2, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(18, 2, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = to_money(value)
        return fen(amount) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return from_fen(int(value))
        return Decimal(value).quantize(CENT)
