"""Refunds: full and partial, idempotent by key, credited to the wallet exactly once."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from cloud.orders.errors import IdempotencyConflict, OrderNotFound, RefundRejected
from cloud.orders.status import OrderStatus
from tests.cloud.orders.orders_world import D, World, build_world, ykc_session

TOTAL = D("69.87")


def settled(w: World) -> int:
    w.service.process(ykc_session(w, "R" * 32))
    order = w.order(w.ykc_gw, w.ykc_device, "R" * 32)
    assert order.status == OrderStatus.SETTLED and order.id is not None
    return order.id


def refunds(w: World) -> list[Decimal]:
    wallet = w.accounts.wallet(w.user_id)
    return [e.amount for e in w.accounts.ledger(wallet.id, limit=100) if e.kind == "refund"]


def test_partial_then_full_refund_is_idempotent_by_key(world: World) -> None:
    w = world
    order_id = settled(w)
    first = w.service.refund(order_id, amount=D("10.00"), reason="slow charging", key="k1")
    assert first.refund.amount == D("10.00") and first.refund.status == "done"
    assert first.order.status == "refunded" and first.order.refunded_amount == D("10.00")
    again = w.service.refund(order_id, amount=D("10.00"), reason="slow charging", key="k1")
    assert again.refund.id == first.refund.id
    again_no_amount = w.service.refund(order_id, amount=None, reason="slow charging", key="k1")
    assert again_no_amount.refund.id == first.refund.id
    with pytest.raises(IdempotencyConflict):
        w.service.refund(order_id, amount=D("11.00"), reason="slow charging", key="k1")
    with pytest.raises(RefundRejected):
        w.service.refund(order_id, amount=D("60.00"), reason="too much", key="k2")
    rest = w.service.refund(order_id, amount=None, reason="goodwill", key="k3")
    assert rest.refund.amount == TOTAL - D("10.00")
    assert rest.order.refunded_amount == TOTAL
    with pytest.raises(RefundRejected):
        w.service.refund(order_id, amount=D("0.01"), reason="nothing left", key="k4")
    assert sorted(refunds(w)) == sorted([D("10.00"), TOTAL - D("10.00")])
    assert w.balance() == D("200.00")
    detail = w.service.get_order(None, order_id)
    assert [r.key for r in detail.refunds] == ["k1", "k3"]
    assert [e.name for e in detail.events if e.name == "refund"] == ["refund", "refund"]


def test_refund_checks(world: World) -> None:
    w = world
    order_id = settled(w)
    for amount, key, reason in ((D("-1"), "a", "x"), (D("0"), "b", "x"), (D("1.001"), "c", "x"),
                                (D("1"), "", "x"), (D("1"), "d", " ")):
        with pytest.raises(ValueError):
            w.service.refund(order_id, amount=amount, reason=reason, key=key)
    with pytest.raises(OrderNotFound):
        w.service.refund(order_id + 10_000, amount=None, reason="x", key="e")
    assert refunds(w) == []


def test_unpaid_order_cannot_be_refunded(engine) -> None:  # type: ignore[no-untyped-def]
    w = build_world(engine, topup="10.00")
    w.service.process(ykc_session(w, "S" * 32))
    order = w.order(w.ykc_gw, w.ykc_device, "S" * 32)
    assert order.status == OrderStatus.UNPAID and order.id is not None
    with pytest.raises(RefundRejected):
        w.service.refund(order.id, amount=None, reason="x", key="k")


def test_concurrent_refunds_with_one_key_credit_once(world: World) -> None:
    w = world
    order_id = settled(w)
    results: list[object] = []

    def go() -> None:
        try:
            results.append(w.service.refund(order_id, amount=D("5.00"), reason="r", key="same"))
        except Exception as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 4 and all(not isinstance(r, Exception) for r in results), results
    assert refunds(w) == [D("5.00")]
    assert w.order(w.ykc_gw, w.ykc_device, "R" * 32).refunded_amount == D("5.00")
