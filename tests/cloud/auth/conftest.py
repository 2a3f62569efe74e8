"""Fixtures of the auth tests: an engine on SQLite and on PostgreSQL.

PostgreSQL: one uniquely named database per test session (dropped at the end); each test starts
from freshly created auth tables. Skipped with the reason when the server does not answer,
a failure under CI=true.
"""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from cloud.auth.config import AuthConfig
from cloud.auth.models import AUTH_TABLES
from cloud.auth.service import AuthService
from tests.support.postgres import backend_engine, database_fixture
from tests.support.tenancy import fast_auth_config


def _drop_auth_tables(engine: Engine) -> None:
    SQLModel.metadata.drop_all(engine, tables=AUTH_TABLES)


pg_url = database_fixture("auth")
#: an engine with empty auth tables
engine = backend_engine("pg_url", prepare=_drop_auth_tables)


@pytest.fixture
def config() -> AuthConfig:
    """Dev mode, a random secret, cheap hashing."""
    return fast_auth_config()


@pytest.fixture
def service(engine: Engine, config: AuthConfig) -> AuthService:
    """An auth service on the engine (environment overrides off)."""
    return AuthService(engine, config, apply_env=False)
