"""Refunds to the original payment: never beyond what was paid, the wallet debited once, reverted
when the provider refuses, resumed after an outage."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from cloud.accounts import AccountService
from cloud.accounts.models import User
from cloud.payments import PaymentService, SimulatedProvider
from cloud.payments.errors import PaymentConflict, ProviderError, ProviderRejected
from cloud.payments.models import PaymentIntent

D = Decimal


@pytest.fixture
def user(accounts: AccountService) -> User:
    return accounts.create_user("t1", "13800000200")


@pytest.fixture
def paid(payments: PaymentService, user: User, wechat: SimulatedProvider) -> PaymentIntent:
    intent = payments.create_topup(user.id, "100.00", "wechat", key="k")
    sent = wechat.pay(intent.out_trade_no)
    assert payments.handle_notify("wechat", sent.headers, sent.body).status == 200
    return payments.get(intent.id)


def test_partial_then_full_refund(payments: PaymentService, accounts: AccountService,
                                  user: User, paid: PaymentIntent,
                                  wechat: SimulatedProvider) -> None:
    first = payments.refund(paid.id, "30.00", key="r1", reason="changed mind")
    assert first.status == "succeeded" and first.provider_refund_id
    assert payments.refund(paid.id, "30.00", key="r1").id == first.id  # idempotent
    assert payments.get(paid.id).status == "partially_refunded"
    assert accounts.balance(user.id) == D("70.00")
    with pytest.raises(PaymentConflict, match="exceeds"):
        payments.refund(paid.id, "70.01", key="r2")
    rest = payments.refund(paid.id, key="r3")  # everything left
    assert rest.amount == D("70.00")
    assert payments.get(paid.id).status == "refunded"
    assert payments.get(paid.id).refunded_amount == D("100.00")
    assert accounts.balance(user.id) == D("0.00")
    assert len(wechat.trades[paid.out_trade_no].refunds) == 2
    with pytest.raises(PaymentConflict):
        payments.refund(paid.id, "1", key="r4")
    with pytest.raises(PaymentConflict):
        payments.refund(paid.id, "10", key="r1")  # key reused for another amount
    assert [r.id for r in payments.refunds(paid.id)] == [first.id, rest.id]
    assert accounts.reconcile(user.id)


def test_spent_money_cannot_be_refunded(payments: PaymentService, accounts: AccountService,
                                        user: User, paid: PaymentIntent) -> None:
    accounts.debit(user.id, "90", key="order:1", ref="order:1")
    with pytest.raises(PaymentConflict, match="no longer holds"):
        payments.refund(paid.id, "20", key="r1")
    assert payments.refunds(paid.id)[0].status == "failed"
    assert payments.get(paid.id).refunded_amount == D("0.00")  # reservation released
    assert payments.refund(paid.id, "10", key="r2").status == "succeeded"
    assert accounts.balance(user.id) == D("0.00")
    assert accounts.reconcile(user.id)


def test_provider_refusal_gives_the_money_back(payments: PaymentService,
                                               accounts: AccountService, user: User,
                                               paid: PaymentIntent,
                                               wechat: SimulatedProvider) -> None:
    wechat.reject_refunds = True
    with pytest.raises(ProviderRejected):
        payments.refund(paid.id, "40", key="r1")
    [failed] = payments.refunds(paid.id)
    assert failed.status == "failed" and failed.failure
    assert accounts.balance(user.id) == D("100.00")
    assert [e.kind for e in accounts.ledger(user.id)] == ["refund", "debit", "topup"]
    assert payments.get(paid.id).refunded_amount == D("0.00")
    assert payments.refund(paid.id, "40", key="r1").status == "failed"  # replay: same result
    assert accounts.balance(user.id) == D("100.00")
    assert accounts.reconcile(user.id)


def test_provider_outage_leaves_it_pending_and_the_key_resumes(
        payments: PaymentService, accounts: AccountService, user: User, paid: PaymentIntent,
        wechat: SimulatedProvider) -> None:
    wechat.fail_next = 1
    with pytest.raises(ProviderError):
        payments.refund(paid.id, "25", key="r1")
    [pending] = payments.refunds(paid.id)
    assert pending.status == "pending"
    assert accounts.balance(user.id) == D("75.00")  # debited once, held for the refund
    done = payments.refund(paid.id, "25", key="r1")
    assert done.id == pending.id and done.status == "succeeded"
    assert accounts.balance(user.id) == D("75.00")  # not debited twice
    assert len(accounts.ledger(user.id)) == 2
    assert accounts.reconcile(user.id)


def test_concurrent_refunds_never_exceed_the_payment(payments: PaymentService,
                                                     accounts: AccountService, user: User,
                                                     paid: PaymentIntent) -> None:
    results: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def refund(i: int) -> None:
        barrier.wait(timeout=60)
        try:
            payments.refund(paid.id, "30.00", key=f"r{i}")
            outcome = "ok"
        except PaymentConflict:
            outcome = "refused"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=refund, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == ["ok"] * 3 + ["refused"] * 3
    assert payments.get(paid.id).refunded_amount == D("90.00")
    assert accounts.balance(user.id) == D("10.00")
    assert accounts.reconcile(user.id)
