"""Engines for the accounts tests: every test that takes ``engine`` runs on SQLite and on
PostgreSQL (one database per test session; the accounts tables dropped before each test)."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from cloud.accounts import AccountService
from tests.cloud.accounts.dbs import clean
from tests.support.postgres import backend_engine, database_fixture

pg_url = database_fixture("acct")
engine = backend_engine("pg_url", prepare=clean)


@pytest.fixture
def accounts(engine: Engine) -> AccountService:
    return AccountService(engine)
