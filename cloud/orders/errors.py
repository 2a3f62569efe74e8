"""The exception tree of :mod:`cloud.orders` (see the package docstring)."""

from __future__ import annotations

from cloud.errors import CloudError


class OrdersError(CloudError):
    """Base class of every error raised by the orders service."""


class BadSessionEvent(OrdersError):
    """A session event cannot be applied (malformed params); it is kept as a rejected event."""


class SettlementFailed(OrdersError):
    """The billing module refused to settle a session (its input is inconsistent)."""


class OrderNotFound(OrdersError):
    """No order with that id (or not visible to the caller)."""


class RefundRejected(OrdersError):
    """A refund is not possible (nothing paid, amount above what is left, wrong state)."""


class IdempotencyConflict(OrdersError):
    """An idempotency key was reused with different parameters."""


class PaymentError(OrdersError):
    """The wallet could not be debited or credited (see the subclasses)."""


class NoPayer(PaymentError):
    """The order's id tag resolves to no user or wallet."""


class InsufficientFunds(PaymentError):
    """The wallet balance (plus any overdraft it is allowed) does not cover the amount."""
