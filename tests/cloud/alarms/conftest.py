"""Alarm tests run on SQLite and on PostgreSQL (one database per test session, dropped after)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from cloud.alarms.tables import TABLES
from cloud.registry import make_engine
from tests.support.postgres import BACKENDS, backend_url, database_fixture

pg_url = database_fixture("alarms")


def fresh_pg_engine(url: str) -> Engine:
    """An engine on the session database with the alarm tables dropped (a clean slate)."""
    engine = make_engine(url)
    with engine.begin() as conn:
        for table in TABLES:
            name = table.__table__.name  # type: ignore[attr-defined]
            conn.execute(text(f"DROP TABLE IF EXISTS {name} CASCADE"))
    return engine


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty alarm store: a SQLite file, or the session's PostgreSQL database."""
    url = backend_url(request, tmp_path)
    if request.param == "postgresql":
        fresh_pg_engine(url).dispose()
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()
