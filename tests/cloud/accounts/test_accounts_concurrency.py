"""Concurrent wallet operations never overspend and never lose an update.

PostgreSQL: two engines (two connection pools, as two cloud workers would have) and several
threads each. SQLite: threads on one database file (the optimistic version check).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from cloud.accounts import AccountService
from cloud.accounts.errors import InsufficientFunds
from cloud.accounts.models import LedgerEntry
from cloud.registry import make_engine
from tests.cloud.accounts.dbs import clean

D = Decimal


@pytest.fixture(params=["sqlite", "postgresql"])
def two_services(request: pytest.FixtureRequest, tmp_path: Path
                 ) -> Iterator[tuple[AccountService, AccountService]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'c.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    engines: list[Engine] = [make_engine(url), make_engine(url)]
    clean(engines[0])
    services = (AccountService(engines[0]), AccountService(engines[1]))
    yield services
    for engine in engines:
        engine.dispose()


def _run(workers: list[Callable[[], None]]) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(len(workers))

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                start.wait(timeout=60)
                fn()
            except BaseException as exc:  # collected and re-raised by the test
                errors.append(exc)
        return run

    threads = [threading.Thread(target=wrap(w)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    return errors


def test_concurrent_debits_never_overspend(two_services: tuple[AccountService, AccountService]
                                           ) -> None:
    a, b = two_services
    user = a.create_user("t1", "13800000010")
    a.credit(user.id, "25.00", key="topup")
    ok: list[LedgerEntry] = []
    refused: list[str] = []
    lock = threading.Lock()

    def spender(service: AccountService, name: str) -> Callable[[], None]:
        def run() -> None:
            for i in range(10):
                try:
                    entry = service.debit(user.id, "1.00", key=f"{name}:{i}", ref=name)
                except InsufficientFunds:
                    with lock:
                        refused.append(f"{name}:{i}")
                    continue
                with lock:
                    ok.append(entry)
        return run

    # 4 threads x 10 debits of 1.00 = 40.00 wanted, 25.00 there
    errors = _run([spender(a, "a1"), spender(a, "a2"), spender(b, "b1"), spender(b, "b2")])
    assert errors == []
    assert len(ok) == 25 and len(refused) == 15
    assert a.balance(user.id) == D("0.00")
    assert sorted(e.seq for e in ok) == list(range(2, 27))  # every update is in the chain
    assert a.reconcile(user.id) and b.reconcile(user.id)


def test_concurrent_credits_and_debits_lose_no_update(
        two_services: tuple[AccountService, AccountService]) -> None:
    a, b = two_services
    user = a.create_user("t1", "13800000011")
    a.credit(user.id, "100.00", key="seed")

    def worker(service: AccountService, name: str) -> Callable[[], None]:
        def run() -> None:
            for i in range(12):
                service.credit(user.id, "2.50", key=f"{name}:c{i}")
                service.debit(user.id, "1.25", key=f"{name}:d{i}")
        return run

    errors = _run([worker(a, "a1"), worker(b, "b1"), worker(a, "a2"), worker(b, "b2")])
    assert errors == []
    # 4 workers x 12 x (2.50 - 1.25) = 60.00
    assert a.balance(user.id) == D("160.00")
    wallet = a.wallet(user.id)
    assert wallet.version == 1 + 4 * 12 * 2
    assert a.reconcile(user.id)


def test_the_same_key_from_many_threads_writes_one_entry(
        two_services: tuple[AccountService, AccountService]) -> None:
    a, b = two_services
    user = a.create_user("t1", "13800000012")
    a.credit(user.id, "10.00", key="seed")
    results: list[LedgerEntry] = []
    lock = threading.Lock()

    def twin(service: AccountService) -> Callable[[], None]:
        def run() -> None:
            entry = service.debit(user.id, "3.00", key="order:42:settle", ref="order:42")
            with lock:
                results.append(entry)
        return run

    errors = _run([twin(a), twin(b), twin(a), twin(b), twin(a), twin(b)])
    assert errors == []
    assert len(results) == 6 and len({e.id for e in results}) == 1
    assert a.balance(user.id) == D("7.00")
    assert len(a.ledger(user.id)) == 2
    assert a.reconcile(user.id)
