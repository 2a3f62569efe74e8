"""Two cloud workers (two OrderService instances, each on its own engine/connection pool) on
one database process the same session events interleaved from two threads, each in its own
order of arrival: every session is one order, billed once, debited once."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from decimal import Decimal

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from cloud.orders.config import OrdersConfig
from cloud.orders.models import OrderEvent, OrderTier
from cloud.orders.status import OrderStatus
from cloud.registry import make_engine
from tests.cloud.orders.orders_world import (
    Clock,
    D,
    build_world,
    make_service,
    ocpp_session,
    ykc_session,
)

YKC_TOTAL, OCPP_TOTAL = D("69.87"), D("69.65")


def run_together(jobs: list[Callable[[], object]]) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def wrap(job: Callable[[], object]) -> None:
        try:
            barrier.wait(30)
            job()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    assert errors == [], errors


@pytest.fixture
def pg_engine(orders_pg_url: str) -> Engine:
    return make_engine(orders_pg_url)


@pytest.mark.postgres
def test_two_services_on_postgresql_make_one_order_and_one_debit_per_session(
        pg_engine: Engine, orders_pg_url: str) -> None:
    clock = Clock()
    config = OrdersConfig(settle_grace=5.0)
    w = build_world(pg_engine, topup="2000.00", config=config, clock=clock)
    events = []
    for i in range(6):
        events += ykc_session(w, f"{i:032X}")
    for i in range(6):
        events += ocpp_session(w, str(500 + i))
    engine_a, engine_b = make_engine(orders_pg_url), make_engine(orders_pg_url)
    a = make_service(engine_a, config=config, clock=clock)
    b = make_service(engine_b, config=config, clock=clock)
    mine = list(events)
    theirs = list(events)
    random.Random(3).shuffle(theirs)

    def one_by_one(service, batch):  # type: ignore[no-untyped-def]
        return lambda: [service.process([e]) for e in batch]

    run_together([one_by_one(a, mine), one_by_one(b, theirs)])
    # both workers redeliver everything once more, at the same time
    run_together([lambda: a.process(events), lambda: b.process(list(reversed(events)))])
    orders = w.orders()
    assert len(orders) == 12
    assert all(o.status == OrderStatus.FINISHED and o.billed_ms is None for o in orders)
    clock.now += 5_000
    run_together([a.settle_due, b.settle_due, a.sweep, b.sweep])
    orders = w.orders()
    assert len(orders) == 12
    totals = sorted(o.total_amount for o in orders if o.total_amount is not None)
    assert totals == [OCPP_TOTAL] * 6 + [YKC_TOTAL] * 6
    assert {o.status for o in orders} == {OrderStatus.SETTLED}
    debits = w.debits()
    assert len(debits) == 12
    assert sorted(-d.amount for d in debits) == totals
    assert {d.idempotency_key for d in debits} == {f"order:{o.id}" for o in orders}
    assert w.balance() == D("2000.00") - sum(totals, Decimal(0))
    assert w.accounts.reconcile(w.user_id)
    engine_a.dispose()
    engine_b.dispose()


def test_two_services_settling_at_once_debit_once(engine: Engine, db_url: str) -> None:
    """Immediate settlement (no grace) on SQLite and PostgreSQL: the end events of every
    session reach two workers, four threads each, at the same moment. One bill, one debit and
    one payment entry in the history per order."""
    w = build_world(engine, topup="2000.00")
    engine_b = make_engine(db_url)
    b = make_service(engine_b)
    sessions = [ykc_session(w, f"{i:032X}") for i in range(6)]
    for events in sessions:  # the running parts first, as they happen
        w.service.process(events[:-2])
    ends = [e for events in sessions for e in events[-2:]]
    jobs: list[Callable[[], object]] = []
    for i in range(4):
        for service in (w.service, b):
            mine = list(ends)
            random.Random(i).shuffle(mine)
            jobs.append(lambda s=service, m=mine: s.process(m))
    run_together(jobs)
    orders = w.orders()
    assert len(orders) == 6 and {o.status for o in orders} == {OrderStatus.SETTLED}
    assert {o.total_amount for o in orders} == {YKC_TOTAL}
    assert len(w.debits()) == 6
    assert w.balance() == D("2000.00") - 6 * YKC_TOTAL
    with Session(engine) as s:
        for order in orders:
            history = s.exec(select(OrderEvent).where(OrderEvent.order_id == order.id)).all()
            assert [h.name for h in history].count("payment") == 1
            assert len(s.exec(select(OrderTier).where(OrderTier.order_id == order.id)).all()) \
                == 3
    engine_b.dispose()
