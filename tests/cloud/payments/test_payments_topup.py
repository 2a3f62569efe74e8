"""Top-ups: intent -> provider -> verified notify -> wallet credited exactly once."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from cloud.accounts import AccountService
from cloud.accounts.models import User
from cloud.payments import PaymentService, SimulatedProvider
from cloud.payments.errors import (
    PaymentConflict,
    PaymentInvalid,
    PaymentNotFound,
    ProviderError,
)
from cloud.payments.provider import OrderRequest

D = Decimal


@pytest.fixture
def user(accounts: AccountService) -> User:
    return accounts.create_user("t1", "13800000100", "Payer")


def test_create_is_idempotent_by_key(payments: PaymentService, user: User,
                                     wechat: SimulatedProvider) -> None:
    first = payments.create_topup(user.id, "50.00", "wechat", key="app-req-1")
    again = payments.create_topup(user.id, D("50"), "wechat", key="app-req-1")
    assert again.id == first.id and again.out_trade_no == first.out_trade_no
    assert first.status == "pending" and first.code_url.startswith("weixin://wxpay/")  # type: ignore[union-attr]
    assert len(wechat.trades) == 1
    assert wechat.trades[first.out_trade_no].request.notify_url == \
        "https://pay.example.com/api/v1/payments/notify/wechat"
    with pytest.raises(PaymentConflict):
        payments.create_topup(user.id, "60.00", "wechat", key="app-req-1")
    # the key is per user: another user's identical key is another payment
    other = payments.accounts.create_user("t1", "13800000101")
    assert payments.create_topup(other.id, "50.00", "wechat", key="app-req-1").id != first.id


def test_bad_requests(payments: PaymentService, user: User) -> None:
    for amount in ("0.99", "5000.01", "1.001", 1.5, "-5"):
        with pytest.raises(PaymentInvalid):
            payments.create_topup(user.id, amount, "wechat", key=f"k{amount}")  # type: ignore[arg-type]
    with pytest.raises(PaymentInvalid, match="provider"):
        payments.create_topup(user.id, "10", "paypal", key="k")
    with pytest.raises(PaymentNotFound):
        payments.create_topup("usr_nobody", "10", "wechat", key="k")
    with pytest.raises(PaymentInvalid):
        payments.create_topup(user.id, "10", "wechat", key="")
    payments.accounts.update_user(user.id, status="disabled")
    with pytest.raises(PaymentInvalid, match="disabled"):
        payments.create_topup(user.id, "10", "wechat", key="k")
    assert payments.list_payments() == []


def test_provider_outage_then_retry_with_the_same_key(payments: PaymentService, user: User,
                                                      wechat: SimulatedProvider) -> None:
    wechat.fail_next = 1
    with pytest.raises(ProviderError):
        payments.create_topup(user.id, "10.00", "wechat", key="k")
    [stuck] = payments.list_payments()
    assert stuck.status == "created" and stuck.code_url is None
    retried = payments.create_topup(user.id, "10.00", "wechat", key="k")
    assert retried.id == stuck.id and retried.status == "pending" and retried.code_url


def test_three_deliveries_credit_once(payments: PaymentService, accounts: AccountService,
                                      user: User, wechat: SimulatedProvider) -> None:
    intent = payments.create_topup(user.id, "88.80", "wechat", key="k")
    first = wechat.pay(intent.out_trade_no)
    acks = [payments.handle_notify("wechat", first.headers, first.body)]
    for _ in range(2):  # the provider redelivers (fresh nonce and signature each time)
        again = wechat.notify(intent.out_trade_no)
        acks.append(payments.handle_notify("wechat", again.headers, again.body))
    assert [a.status for a in acks] == [200, 200, 200]
    assert all(b"SUCCESS" in a.body for a in acks)
    assert accounts.balance(user.id) == D("88.80")
    assert len(accounts.ledger(user.id)) == 1
    paid = payments.get(intent.id)
    assert paid.status == "paid" and paid.provider_txn_id and paid.ledger_entry_id
    assert paid.raw_notify and '"total_fee": "8880"' in paid.raw_notify
    outcomes = [n.outcome for n in payments.notifications(out_trade_no=intent.out_trade_no)]
    assert sorted(outcomes) == ["credited", "duplicate", "duplicate"]
    assert accounts.reconcile(user.id)


def test_concurrent_notifies_credit_once(payments: PaymentService, accounts: AccountService,
                                         user: User, wechat: SimulatedProvider) -> None:
    intent = payments.create_topup(user.id, "20.00", "wechat", key="k")
    wechat.pay(intent.out_trade_no)
    notifies = [wechat.notify(intent.out_trade_no) for _ in range(6)]
    barrier = threading.Barrier(len(notifies))
    statuses: list[int] = []
    errors: list[BaseException] = []

    def deliver(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            ack = payments.handle_notify("wechat", notifies[i].headers, notifies[i].body)
            statuses.append(ack.status)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(len(notifies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and statuses == [200] * 6
    assert accounts.balance(user.id) == D("20.00")
    assert len(accounts.ledger(user.id)) == 1
    outcomes = [n.outcome for n in payments.notifications(out_trade_no=intent.out_trade_no)]
    assert outcomes.count("credited") == 1 and outcomes.count("duplicate") == 5
    assert accounts.reconcile(user.id)


def test_bad_signature_and_wrong_amount_are_refused_and_logged(
        payments: PaymentService, accounts: AccountService, user: User,
        wechat: SimulatedProvider, caplog: pytest.LogCaptureFixture) -> None:
    intent = payments.create_topup(user.id, "10.00", "wechat", key="k")
    wechat.pay(intent.out_trade_no)
    forged = wechat.notify(intent.out_trade_no, key="not-the-merchant-key-00000000000")
    ack = payments.handle_notify("wechat", forged.headers, forged.body)
    assert ack.status == 401 and b"FAIL" in ack.body
    tampered = wechat.notify(intent.out_trade_no).body.replace(b"total_fee=1000",
                                                               b"total_fee=100000")
    assert payments.handle_notify("wechat", {}, tampered).status == 401
    wrong = wechat.notify(intent.out_trade_no, amount=D("1000.00"))  # validly signed, wrong sum
    ack = payments.handle_notify("wechat", wrong.headers, wrong.body)
    assert ack.status == 400 and b"amount_mismatch" in ack.body
    assert accounts.balance(user.id) == D("0.00")
    assert payments.get(intent.id).status == "pending"
    assert payments.handle_notify("paypal", {}, b"x").status == 404
    assert payments.handle_notify("wechat", {}, b"garbage").status == 400
    outcomes = [n.outcome for n in payments.notifications()]
    assert outcomes == ["notify_refused", "unknown_provider",
                        "amount_mismatch", "bad_signature", "bad_signature"]
    assert "bad_signature" in caplog.text and "amount_mismatch" in caplog.text
    # the genuine notify still works afterwards
    good = wechat.notify(intent.out_trade_no)
    assert payments.handle_notify("wechat", good.headers, good.body).status == 200
    assert accounts.balance(user.id) == D("10.00")


def test_a_notify_for_an_unknown_trade(payments: PaymentService, user: User,
                                       wechat: SimulatedProvider) -> None:
    wechat.create_order(OrderRequest("T-ELSEWHERE", D("5.00"), "CNY", "not ours"))
    sent = wechat.pay("T-ELSEWHERE")
    assert payments.handle_notify("wechat", sent.headers, sent.body).status == 400
    assert payments.notifications()[0].outcome == "unknown_trade"


def test_sync_credits_when_the_notify_never_came(payments: PaymentService,
                                                 accounts: AccountService, user: User,
                                                 wechat: SimulatedProvider) -> None:
    intent = payments.create_topup(user.id, "30.00", "wechat", key="k")
    assert payments.sync(intent.id).status == "pending"  # not paid yet
    wechat.pay(intent.out_trade_no)  # the notify is lost
    assert payments.sync(intent.id).status == "paid"
    assert payments.sync(intent.id).status == "paid"
    late = wechat.notify(intent.out_trade_no)
    assert payments.handle_notify("wechat", late.headers, late.body).status == 200
    assert accounts.balance(user.id) == D("30.00")
    assert len(accounts.ledger(user.id)) == 1
