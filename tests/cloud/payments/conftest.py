"""Engines and services for the payments tests: each test on SQLite and on PostgreSQL (one
database per test session; the accounts and payments tables dropped before each test)."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from cloud.accounts import AccountService
from cloud.payments import PaymentService, SimulatedProvider, SimulatedProviderConfig
from cloud.payments.config import PaymentsConfig
from tests.cloud.accounts.dbs import clean
from tests.support.postgres import backend_engine, database_fixture

API_KEY = "192006250b4c09247ec02edce69f6a2d"

pg_url = database_fixture("pay")
engine = backend_engine("pg_url", prepare=clean)


@pytest.fixture
def accounts(engine: Engine) -> AccountService:
    return AccountService(engine)


@pytest.fixture
def wechat() -> SimulatedProvider:
    return SimulatedProvider("wechat", SimulatedProviderConfig(api_key=API_KEY))


@pytest.fixture
def payments(engine: Engine, accounts: AccountService,
             wechat: SimulatedProvider) -> PaymentService:
    return PaymentService(engine, accounts, {"wechat": wechat},
                          PaymentsConfig(notify_base_url="https://pay.example.com"))
