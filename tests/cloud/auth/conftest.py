"""Fixtures of the auth tests: an engine on SQLite and on PostgreSQL.

PostgreSQL: one uniquely named database per test session (dropped at the end); each test starts
from freshly created auth tables. Skipped with the reason when the server does not answer,
a failure under CI=true.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from cloud.auth.config import AuthConfig
from cloud.auth.models import AUTH_TABLES
from cloud.auth.service import AuthService
from cloud.registry import make_engine
from tests.support.tenancy import fast_auth_config

PG_ADMIN = os.environ.get("VOLTMESH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def pg_auth_url() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this session, or None (with the reason) when unreachable."""
    try:
        admin = make_engine(PG_ADMIN)
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL must answer under CI=true: {exc}")
        yield None
        return
    name = f"vm_auth_{uuid.uuid4().hex[:12]}"
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path,
           pg_auth_url: str | None) -> Iterator[Engine]:
    """An engine with empty auth tables."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'auth.db'}")
    else:
        if pg_auth_url is None:
            pytest.skip(f"no PostgreSQL answering at {PG_ADMIN} (set VOLTMESH_PG_URL)")
        eng = make_engine(pg_auth_url)
        SQLModel.metadata.drop_all(eng, tables=AUTH_TABLES)
    yield eng
    eng.dispose()


@pytest.fixture
def config() -> AuthConfig:
    """Dev mode, a random secret, cheap hashing."""
    return fast_auth_config()


@pytest.fixture
def service(engine: Engine, config: AuthConfig) -> AuthService:
    """An auth service on the engine (environment overrides off)."""
    return AuthService(engine, config, apply_env=False)
