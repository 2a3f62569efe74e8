"""Engines for the orders tests: SQLite (a file per test) and PostgreSQL (one database per test
session, uniquely named, dropped afterwards; tests keep apart by unique gateway/tenant ids)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from cloud.registry import make_engine
from tests.cloud.orders.orders_world import World, build_world

PG_ADMIN = os.environ.get("VOLTMESH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def orders_pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (skipped when none answers)."""
    try:
        admin = make_engine(PG_ADMIN)
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL must answer under CI=true: {exc}")
        pytest.skip(f"no PostgreSQL at {PG_ADMIN}: {exc}")
    name = f"vm_orders_{uuid.uuid4().hex[:12]}"
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orders.db'}"
    return str(request.getfixturevalue("orders_pg_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def world(engine: Engine) -> World:
    return build_world(engine)
