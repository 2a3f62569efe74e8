"""Engines for the API tests: SQLite (a file per test) and PostgreSQL (one database per test
session, dropped afterwards; skipped when no PostgreSQL answers, failed under CI=true)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from cloud.registry import make_engine

PG_ADMIN = os.environ.get("VOLTMESH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def api_pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session."""
    try:
        admin = make_engine(PG_ADMIN)
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL must answer under CI=true: {exc}")
        pytest.skip(f"no PostgreSQL at {PG_ADMIN}: {exc}")
    name = f"vm_api_{uuid.uuid4().hex[:12]}"
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def api_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'api.db'}" if request.param == "sqlite" else \
        str(request.getfixturevalue("api_pg_url"))
    engine = make_engine(url)
    yield engine
    engine.dispose()
