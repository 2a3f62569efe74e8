"""Databases for the accounts and payments tests: a SQLite file, or one PostgreSQL database per
test session (uniquely named, dropped at the end) whose acct_/pay_ tables are dropped before
every test. No PostgreSQL: skip with the reason, or fail under CI=true."""

from __future__ import annotations

import os

from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from tests.support.postgres import pg_database

__all__ = ["clean", "pg_database"]

PG_ADMIN = os.environ.get("VOLTMESH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PREFIXES = ("acct_", "pay_")




def clean(engine: Engine) -> None:
    """Drop the accounts and payments tables (the services create them again)."""
    tables = [t for t in SQLModel.metadata.sorted_tables if t.name.startswith(PREFIXES)]
    SQLModel.metadata.drop_all(engine, tables=tables)
