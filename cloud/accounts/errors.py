"""The exception tree of :mod:`cloud.accounts`.

::

    CloudError
    └── AccountError              base; ``status`` (HTTP) and ``code`` (the API's ``error``)
        ├── InvalidInput          a value is malformed (400)
        ├── NotFound              no such user / wallet / card / vehicle, or not visible (404)
        ├── Conflict              unique number taken, or the state forbids the change (409)
        │   ├── IdempotencyConflict  a key reused for a different operation (409)
        │   └── StateError        e.g. unfreezing a lost card, closing a wallet with money (409)
        ├── InsufficientFunds     a debit would take the balance below the overdraft limit (402)
        └── ConcurrentUpdate      the wallet stayed contended through every retry (503)
"""

from __future__ import annotations

from cloud.errors import CloudError


class AccountError(CloudError):
    """Base class of the accounts errors."""

    status: int = 400
    code: str = "bad_request"


class InvalidInput(AccountError):
    """A value is malformed (an amount with 3 decimals, a VIN of 16 characters ...)."""

    status = 400
    code = "bad_request"


class NotFound(AccountError):
    """The row does not exist, or the caller may not see it."""

    status = 404
    code = "not_found"


class Conflict(AccountError):
    """A unique value is taken, or the current state forbids the change."""

    status = 409
    code = "conflict"


class IdempotencyConflict(Conflict):
    """An idempotency key was used before for a different wallet, kind or amount."""

    code = "idempotency_conflict"


class StateError(Conflict):
    """The object's state forbids the operation."""

    code = "invalid_state"


class InsufficientFunds(AccountError):
    """A debit would take the balance below ``-overdraft_limit``."""

    status = 402
    code = "insufficient_funds"


class ConcurrentUpdate(AccountError):
    """The wallet was updated by others through every retry; try again later."""

    status = 503
    code = "busy"
