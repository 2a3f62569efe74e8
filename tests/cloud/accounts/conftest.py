"""Engines for the accounts tests: every test that takes ``engine`` runs on SQLite and on
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from cloud.accounts import AccountService
from cloud.registry import make_engine
from tests.cloud.accounts.dbs import clean, pg_database


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    yield from pg_database("acct")


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'accounts.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    eng = make_engine(url)
    clean(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def accounts(engine: Engine) -> AccountService:
    return AccountService(engine)
