"""Exact decimal columns: digit-for-digit round trips on SQLite and PostgreSQL, no rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import StatementError

from cloud.orders.columns import ExactDecimal

VALUES = ["9999999999999999.99", "0.01", "-0.05", "0.00", "1234567890.10"]


def test_round_trip_is_exact(engine: Engine) -> None:
    meta = MetaData()
    table = Table(f"order_test_money_{abs(hash(engine.url)) % 10**6}", meta,
                  Column("id", Integer, primary_key=True),
                  Column("amount", ExactDecimal(18, 2)))
    meta.create_all(engine)
    try:
        with engine.begin() as conn:
            for i, value in enumerate(VALUES):
                conn.execute(insert(table).values(id=i, amount=Decimal(value)))
            conn.execute(insert(table).values(id=99, amount=7))  # an int is exact too
        with engine.connect() as conn:
            got = dict(conn.execute(select(table.c.id, table.c.amount)).all())  # type: ignore[arg-type]
        assert [str(got[i]) for i in range(len(VALUES))] == VALUES
        assert str(got[99]) == "7.00"
        for bad in (Decimal("0.001"), 0.5, Decimal("12345678901234567.00")):
            with pytest.raises((StatementError, ValueError, TypeError)), engine.begin() as conn:
                conn.execute(insert(table).values(id=100, amount=bad))
    finally:
        meta.drop_all(engine)
