"""Engines and services for the payments tests (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from cloud.accounts import AccountService
from cloud.payments import PaymentService, SimulatedProvider, SimulatedProviderConfig
from cloud.payments.config import PaymentsConfig
from cloud.registry import make_engine
from tests.cloud.accounts.dbs import clean, pg_database

API_KEY = "192006250b4c09247ec02edce69f6a2d"


@pytest.fixture(scope="session")
def pay_pg_url() -> Iterator[str]:
    yield from pg_database("pay")


@pytest.fixture(params=["sqlite", "postgresql"])
def pay_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'payments.db'}"
    else:
        url = request.getfixturevalue("pay_pg_url")
    eng = make_engine(url)
    clean(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def accounts(pay_engine: Engine) -> AccountService:
    return AccountService(pay_engine)


@pytest.fixture
def wechat() -> SimulatedProvider:
    return SimulatedProvider("wechat", SimulatedProviderConfig(api_key=API_KEY))


@pytest.fixture
def payments(pay_engine: Engine, accounts: AccountService,
             wechat: SimulatedProvider) -> PaymentService:
    return PaymentService(pay_engine, accounts, {"wechat": wechat},
                          PaymentsConfig(notify_base_url="https://pay.example.com"))
