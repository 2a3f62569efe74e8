"""Charging sessions and orders: every session becomes exactly one order, billed once, paid once.

Modules: :mod:`~cloud.orders.models` (tables), :mod:`~cloud.orders.service` (OrderService:
``handle(batch)`` for the billing lane, queries, refunds, ``watch``), :mod:`~cloud.orders.api`
(``router``), :mod:`~cloud.orders.lifecycle` (events -> facts), :mod:`~cloud.orders.meter`
(meter sanity), :mod:`~cloud.orders.settlement` (bill, tiers, reconciliation),
:mod:`~cloud.orders.ports` (what orders need from catalogue, billing, wallets) and
:mod:`~cloud.orders.adapters` (those ports over the real packages). See ``docs/orders.md``.

Exceptions::

    CloudError
    └── OrdersError               base of everything raised here
        ├── BadSessionEvent       malformed event params (kept in order_rejects, never raised
        │                         out of handle())
        ├── SettlementFailed      the billing module refused the session's input
        ├── OrderNotFound         no such order, or not visible to the caller
        ├── RefundRejected        nothing (or not that much) left to refund
        ├── IdempotencyConflict   a refund key reused with another amount
        └── PaymentError          the wallet failed
            ├── NoPayer           the id tag resolves to nobody
            └── InsufficientFunds the wallet cannot pay
"""

from cloud.orders.config import OrdersConfig
from cloud.orders.errors import (
    BadSessionEvent,
    IdempotencyConflict,
    InsufficientFunds,
    NoPayer,
    OrderNotFound,
    OrdersError,
    PaymentError,
    RefundRejected,
    SettlementFailed,
)
from cloud.orders.models import Order, OrderEvent, OrderRefund, OrderReject, OrderSample, OrderTier
from cloud.orders.queries import OrderQuery
from cloud.orders.service import OrderService
from cloud.orders.status import OrderStatus, StartMethod

__all__ = [
    "BadSessionEvent",
    "IdempotencyConflict",
    "InsufficientFunds",
    "NoPayer",
    "Order",
    "OrderEvent",
    "OrderNotFound",
    "OrderQuery",
    "OrderRefund",
    "OrderReject",
    "OrderSample",
    "OrderService",
    "OrderStatus",
    "OrderTier",
    "OrdersConfig",
    "OrdersError",
    "PaymentError",
    "RefundRejected",
    "SettlementFailed",
    "StartMethod",
]
