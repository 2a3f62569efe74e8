"""Decimal parsing at the boundary and the rounding helpers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cloud.billing.money import decimals, q_cny, q_kwh, q_rate, to_decimal


@pytest.mark.parametrize(("value", "expected"), [
    ("1.20", Decimal("1.20")), (" 3 ", Decimal(3)), (7, Decimal(7)), (0.1, Decimal("0.1")),
    (Decimal("2.5"), Decimal("2.5")), (1e-05, Decimal("0.00001")),
])
def test_to_decimal_accepts_exact_forms(value: object, expected: Decimal) -> None:
    assert to_decimal(value, "x") == expected


@pytest.mark.parametrize("value", [True, None, "1,5", "", "inf", float("nan"), [1], "1e"])
def test_to_decimal_refuses_the_rest_naming_the_field(value: object) -> None:
    with pytest.raises(ValueError, match="^price: "):
        to_decimal(value, "price")


def test_half_up_everywhere() -> None:
    assert q_cny(Decimal("0.005")) == Decimal("0.01")
    assert q_cny(Decimal("0.015")) == Decimal("0.02")  # half-even would give 0.02 too
    assert q_cny(Decimal("0.025")) == Decimal("0.03")  # ... but 0.02 here
    assert q_kwh(Decimal("1.00005")) == Decimal("1.0001")
    assert q_rate(Decimal("1.2")) == Decimal("1.20000")
    assert (decimals(Decimal("1.20")), decimals(Decimal(3)), decimals(Decimal("0.00001"))) \
        == (1, 0, 5)
