"""Exact quantities: parsing decimals at the boundary and the one rounding rule.

* energy: kWh, quantized to ``0.0001`` (what YKC and most meters carry);
* money: CNY, quantized to ``0.01`` (fen);
* rates: CNY/kWh, at most 5 decimals (YKC carries rates in 0.00001 yuan).

Rounding is always ``ROUND_HALF_UP`` (四舍五入). Floats never enter a calculation: a float
handed in at the boundary (a JSON number) is converted through its shortest ``repr`` (``1.2`` ->
``Decimal("1.2")``), which is the decimal the sender wrote; NaN and infinities are refused.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

KWH = Decimal("0.0001")
CNY = Decimal("0.01")
RATE = Decimal("0.00001")
ZERO = Decimal(0)

#: largest rate a YKC billing model carries (uint32 in 0.00001 yuan)
MAX_RATE = Decimal("42949.67295")


def to_decimal(value: object, what: str) -> Decimal:
    """``value`` (Decimal, int, str or float) as a finite Decimal; ValueError names ``what``."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a decimal number, got {value!r}")  # noqa: TRY004
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{what}: {value!r} is not a decimal number") from None
    else:
        raise ValueError(  # noqa: TRY004 - callers handle one error type for bad input
            f"{what}: expected a decimal number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{what}: {value!r} is not a finite number")
    return result


def decimals(value: Decimal) -> int:
    """How many decimal places ``value`` carries (``1.20`` -> 2, ``3`` -> 0)."""
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    return max(0, -exponent)


def q_kwh(value: Decimal) -> Decimal:
    """Energy rounded half-up to 0.0001 kWh."""
    return value.quantize(KWH, rounding=ROUND_HALF_UP)


def q_cny(value: Decimal) -> Decimal:
    """Money rounded half-up to 0.01 CNY."""
    return value.quantize(CNY, rounding=ROUND_HALF_UP)


def q_rate(value: Decimal) -> Decimal:
    """A rate written with exactly 5 decimals (it must not carry more: see the tariff)."""
    return value.quantize(RATE, rounding=ROUND_HALF_UP)
