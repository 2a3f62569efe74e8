"""The accounts and payments tables of a test database (see tests/support/postgres.py for the
databases themselves)."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

PREFIXES = ("acct_", "pay_")


def clean(engine: Engine) -> None:
    """Drop the accounts and payments tables (the services create them again)."""
    tables = [t for t in SQLModel.metadata.sorted_tables if t.name.startswith(PREFIXES)]
    SQLModel.metadata.drop_all(engine, tables=tables)
