"""Alarm tests run on SQLite and on PostgreSQL (one database per test session, dropped after)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from cloud.alarms.tables import TABLES
from cloud.registry import make_engine

PG_ADMIN = os.environ.get("VOLTMESH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (skipped when none answers)."""
    admin = make_engine(PG_ADMIN)
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        admin.dispose()
        if IN_CI:
            pytest.fail(f"PostgreSQL must answer under CI=true: {exc}")
        pytest.skip(f"no PostgreSQL at {PG_ADMIN}: {exc}")
    name = f"vm_alarms_{uuid.uuid4().hex[:12]}"
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def fresh_pg_engine(url: str) -> Engine:
    """An engine on the session database with the alarm tables dropped (a clean slate)."""
    engine = make_engine(url)
    with engine.begin() as conn:
        for table in TABLES:
            name = table.__table__.name  # type: ignore[attr-defined]
            conn.execute(text(f"DROP TABLE IF EXISTS {name} CASCADE"))
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty alarm store: a SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'alarms.db'}"
    url: str = request.getfixturevalue("pg_url")
    fresh_pg_engine(url).dispose()
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()
