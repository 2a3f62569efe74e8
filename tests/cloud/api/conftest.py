"""Engines for the API tests: SQLite (a file per test) and PostgreSQL (one database per test
session, dropped afterwards; skipped when no PostgreSQL answers, failed under CI=true)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from cloud.registry import make_engine
from tests.support.postgres import pg_database


@pytest.fixture(scope="session")
def api_pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session."""
    yield from pg_database("api")


@pytest.fixture(params=["sqlite", "postgresql"])
def api_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'api.db'}" if request.param == "sqlite" else \
        str(request.getfixturevalue("api_pg_url"))
    engine = make_engine(url)
    yield engine
    engine.dispose()
