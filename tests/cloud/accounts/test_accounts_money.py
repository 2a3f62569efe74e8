"""Money parsing and the Money column: exact on SQLite and PostgreSQL, floats refused."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Column, MetaData, String, Table, insert, select
from sqlalchemy.engine import Engine

from cloud.accounts.errors import InvalidInput
from cloud.accounts.money import Money, fen, from_fen, to_money, to_positive_money


@pytest.mark.parametrize(("value", "expected"), [
    ("12.3", Decimal("12.30")), (Decimal("0.01"), Decimal("0.01")), (7, Decimal("7.00")),
    (" 5.00 ", Decimal("5.00")), ("1.230", Decimal("1.23")), ("-3.5", Decimal("-3.50")),
    ("9999999999999999.99", Decimal("9999999999999999.99")),
])
def test_to_money_accepts_decimals_ints_and_strings(value: object, expected: Decimal) -> None:
    amount = to_money(value)
    assert amount == expected
    assert amount.as_tuple().exponent == -2


@pytest.mark.parametrize("value", [
    0.1, 1.0, True, "1.234", "abc", "NaN", "Infinity", None, [1], "10000000000000000.00",
])
def test_to_money_refuses_floats_and_sub_cent_amounts(value: object) -> None:
    with pytest.raises(InvalidInput):
        to_money(value)


def test_positive_money_and_minor_units() -> None:
    with pytest.raises(InvalidInput, match="greater than zero"):
        to_positive_money("0")
    assert fen(Decimal("12.34")) == 1234
    assert from_fen(1234) == Decimal("12.34")
    assert from_fen(-5) == Decimal("-0.05")


def test_money_column_round_trips_exactly(engine: Engine) -> None:
    meta = MetaData()
    table = Table("acct_test_money", meta, Column("k", String(10), primary_key=True),
                  Column("v", Money()))
    meta.create_all(engine)
    values = {"a": Decimal("9999999999999999.99"), "b": Decimal("0.01"),
              "c": Decimal("-12345678901234.56"), "d": Decimal("0.10")}
    try:
        with engine.begin() as conn:
            conn.execute(insert(table), [{"k": k, "v": v} for k, v in values.items()])
        with engine.connect() as conn:
            back = dict(conn.execute(select(table.c.k, table.c.v)).all())
            total = conn.execute(select(table.c.v).where(table.c.v > Decimal("0.05"))).all()
        assert back == values
        assert all(isinstance(v, Decimal) for v in back.values())
        assert {row[0] for row in total} == {values["a"], values["d"]}
        with pytest.raises(Exception, match="float"), engine.begin() as conn:
            conn.execute(insert(table), [{"k": "f", "v": 0.1}])
    finally:
        meta.drop_all(engine)
