"""Engines for the orders tests: SQLite (a file per test) and PostgreSQL (one database per test
session, uniquely named, dropped afterwards; tests keep apart by unique gateway/tenant ids)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from cloud.registry import make_engine
from tests.cloud.orders.orders_world import World, build_world
from tests.support.postgres import pg_database


@pytest.fixture(scope="session")
def orders_pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (skipped when none answers)."""
    yield from pg_database("orders")


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
