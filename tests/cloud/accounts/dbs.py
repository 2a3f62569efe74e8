"""Databases for the accounts and payments tests: a SQLite file, or one PostgreSQL database per
test session (uniquely named, dropped at the end) whose acct_/pay_ tables are dropped before
every test. No PostgreSQL: skip with the reason, or fail under CI=true."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from cloud.registry import make_engine

PG_ADMIN = os.environ.get("VOLTMESH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PREFIXES = ("acct_", "pay_")


def pg_database(tag: str) -> Iterator[str]:
    """Create a database ``vm_<tag>_<random>``, yield its URL, drop it (skip when no server)."""
    try:
        admin = make_engine(PG_ADMIN)
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL must answer under CI=true: {exc}")
        pytest.skip(f"no PostgreSQL at {PG_ADMIN}: {exc}")
    name = f"vm_{tag}_{uuid.uuid4().hex[:10]}"
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def clean(engine: Engine) -> None:
    """Drop the accounts and payments tables (the services create them again)."""
    tables = [t for t in SQLModel.metadata.sorted_tables if t.name.startswith(PREFIXES)]
    SQLModel.metadata.drop_all(engine, tables=tables)
