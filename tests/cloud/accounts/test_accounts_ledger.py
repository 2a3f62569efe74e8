"""Wallet ledger: idempotency keys, the balance floor, refund caps, reconciliation."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from cloud.accounts import AccountService
from cloud.accounts.errors import (
    IdempotencyConflict,
    InsufficientFunds,
    InvalidInput,
    NotFound,
    StateError,
)
from cloud.accounts.models import User

D = Decimal


@pytest.fixture
def user(accounts: AccountService) -> User:
    return accounts.create_user("t1", "13800000001", "Zhang")


def test_same_key_returns_the_first_entry(accounts: AccountService, user: User) -> None:
    first = accounts.credit(user.id, "100.00", key="pay:1", ref="p1")
    again = accounts.credit(user.id, D("100"), key="pay:1", ref="p1")
    assert again.id == first.id and again.seq == 1
    assert accounts.balance(user.id) == D("100.00")
    debit = accounts.debit(user.id, "30.10", key="order:1:debit", ref="order:1")
    assert debit.amount == D("-30.10") and debit.balance_after == D("69.90")
    assert accounts.debit(user.id, "30.10", key="order:1:debit").id == debit.id
    assert accounts.balance(user.id) == D("69.90")
    assert len(accounts.ledger(user.id)) == 2
    assert accounts.entry_for_key("order:1:debit") is not None
    assert accounts.entry_for_key("order:2:debit") is None


def test_same_key_for_another_amount_kind_or_wallet_is_an_error(accounts: AccountService,
                                                                 user: User) -> None:
    other = accounts.create_user("t1", "13800000002")
    accounts.credit(user.id, "50", key="k")
    with pytest.raises(IdempotencyConflict):
        accounts.credit(user.id, "51", key="k")
    with pytest.raises(IdempotencyConflict):
        accounts.debit(user.id, "50", key="k")
    with pytest.raises(IdempotencyConflict):
        accounts.credit(other.id, "50", key="k")
    with pytest.raises(IdempotencyConflict):
        accounts.credit(user.id, "50", key="k", ref="another-payment")
    assert accounts.balance(user.id) == D("50.00")
    assert accounts.balance(other.id) == D("0.00")


def test_balance_never_goes_negative_without_an_overdraft(accounts: AccountService,
                                                          user: User) -> None:
    accounts.credit(user.id, "10", key="c")
    with pytest.raises(InsufficientFunds):
        accounts.debit(user.id, "10.01", key="d1")
    accounts.debit(user.id, "10", key="d2")
    with pytest.raises(InsufficientFunds):
        accounts.adjust(user.id, "-0.01", key="a1")
    accounts.set_overdraft(user.id, "20")
    accounts.debit(user.id, "20", key="d3")
    assert accounts.balance(user.id) == D("-20.00")
    with pytest.raises(InsufficientFunds):
        accounts.debit(user.id, "0.01", key="d4")
    with pytest.raises(StateError):
        accounts.set_overdraft(user.id, "5")  # below the current balance
    assert accounts.reconcile(user.id)
    # the failed attempts wrote nothing and did not burn their keys
    assert accounts.entry_for_key("d1") is None
    accounts.credit(user.id, "50", key="c2")
    assert accounts.debit(user.id, "10.01", key="d1").amount == D("-10.01")


def test_refunds_of_a_ref_never_exceed_its_debits(accounts: AccountService, user: User) -> None:
    accounts.credit(user.id, "100", key="c")
    accounts.debit(user.id, "40", key="o1:d", ref="order:1")
    accounts.refund(user.id, "15", key="o1:r1", ref="order:1")
    accounts.refund(user.id, "25", key="o1:r2", ref="order:1")
    with pytest.raises(StateError, match="exceeds"):
        accounts.refund(user.id, "0.01", key="o1:r3", ref="order:1")
    with pytest.raises(StateError):
        accounts.refund(user.id, "1", key="o2:r1", ref="order:2")  # nothing debited
    assert accounts.balance(user.id) == D("100.00")
    assert [e.kind for e in accounts.ledger(user.id)] == ["refund", "refund", "debit", "topup"]


def test_bad_amounts_keys_and_targets(accounts: AccountService, user: User) -> None:
    for amount in ("0", "-1", "1.001", 1.5):
        with pytest.raises(InvalidInput):
            accounts.credit(user.id, amount, key=f"k{amount}")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        accounts.adjust(user.id, "0", key="zero")
    with pytest.raises(InvalidInput):
        accounts.credit(user.id, "1", key="")
    with pytest.raises(InvalidInput):
        accounts.credit(user.id, "1", key="x" * 129)
    with pytest.raises(NotFound):
        accounts.credit("usr_nobody", "1", key="k")
    with pytest.raises(InvalidInput):
        accounts.credit("someone", "1", key="k")
    assert accounts.ledger(user.id) == []


def test_ledger_pages_newest_first(accounts: AccountService, user: User) -> None:
    for i in range(7):
        accounts.credit(user.id, i + 1, key=f"c{i}")
    page1 = accounts.ledger(user.id, limit=3)
    page2 = accounts.ledger(user.id, limit=3, before_seq=page1[-1].seq)
    assert [e.seq for e in page1] == [7, 6, 5]
    assert [e.seq for e in page2] == [4, 3, 2]
    assert accounts.wallet(user.id).version == 7


def test_reconcile_detects_a_tampered_ledger(accounts: AccountService, user: User) -> None:
    accounts.credit(user.id, "10", key="c1")
    accounts.debit(user.id, "4", key="d1")
    assert accounts.reconcile(user.id)
    assert accounts.ledger_problems(user.id) == []
    wallet = accounts.wallet(user.id)
    money = "1100" if accounts.engine.dialect.name == "sqlite" else "11.00"  # fen on SQLite
    with accounts.engine.begin() as conn:
        conn.execute(text(f"UPDATE acct_wallets SET balance = {money} WHERE id = :id"),
                     {"id": wallet.id})
    assert not accounts.reconcile(user.id)
    assert any("balance" in p for p in accounts.ledger_problems(user.id))


OPS = st.lists(st.tuples(
    st.sampled_from(["credit", "debit", "refund", "adjust", "replay"]),
    st.integers(min_value=-5000, max_value=5000),  # fen
    st.integers(min_value=0, max_value=5),  # which ref
), min_size=1, max_size=25)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_random_sequences_reconcile(accounts: AccountService, ops: list[tuple[str, int, int]]
                                    ) -> None:
    """Whatever happens, the ledger reconciles and matches a plain model of the wallet."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    user = accounts.create_user(tenant, "13900000000")
    accounts.set_overdraft(user.id, "10.00")
    balance = D("0.00")
    debited: dict[str, Decimal] = {}
    refunded: dict[str, Decimal] = {}
    done: list[tuple[str, str, Decimal, str | None]] = []  # (method, key, amount, ref) applied
    for n, (op, cents, ref_no) in enumerate(ops):
        amount = (D(abs(cents)) / 100).quantize(D("0.01"))
        ref = f"{tenant}:r{ref_no}"
        key = f"{tenant}:{n}"
        if op == "replay" and done:
            method, key, amount, ref_used = done[cents % len(done)]
            entry = getattr(accounts, method)(user.id, amount, key=key, ref=ref_used)
            assert entry.idempotency_key == key  # nothing changes
            continue
        if op == "credit" and amount > 0:
            accounts.credit(user.id, amount, key=key, ref=ref)
            balance += amount
        elif op == "debit" and amount > 0:
            ok = balance - amount >= D("-10.00")
            try:
                accounts.debit(user.id, amount, key=key, ref=ref)
            except InsufficientFunds:
                assert not ok
                continue
            assert ok
            balance -= amount
            debited[ref] = debited.get(ref, D(0)) + amount
        elif op == "refund" and amount > 0:
            ok = refunded.get(ref, D(0)) + amount <= debited.get(ref, D(0))
            try:
                accounts.refund(user.id, amount, key=key, ref=ref)
            except StateError:
                assert not ok
                continue
            assert ok
            balance += amount
            refunded[ref] = refunded.get(ref, D(0)) + amount
        elif op == "adjust" and cents != 0:
            signed = (D(cents) / 100).quantize(D("0.01"))
            ok = balance + signed >= D("-10.00")
            try:
                accounts.adjust(user.id, signed, key=key)
            except InsufficientFunds:
                assert not ok
                continue
            assert ok
            balance += signed
            done.append(("adjust", key, signed, None))
            continue
        else:
            continue
        done.append((op, key, amount, ref))
    assert accounts.balance(user.id) == balance
    assert accounts.reconcile(user.id), accounts.ledger_problems(user.id)
