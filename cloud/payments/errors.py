"""The exception tree of :mod:`cloud.payments`.

::

    CloudError
    └── PaymentError              base; ``status`` (HTTP) and ``code`` (the API's ``error``)
        ├── PaymentInvalid        bad amount, unknown provider, user not active (400)
        ├── PaymentNotFound       no such payment or refund, or not visible (404)
        ├── PaymentConflict       idempotency key reused differently, refund beyond the paid
        │                         amount, payment not in a refundable state (409)
        ├── NotifyRefused         a provider notification failed verification (400)
        │   └── SignatureError    ... because its signature is wrong (401)
        └── ProviderError         the provider failed or is unreachable; retry (502)
            └── ProviderRejected  the provider refused the request for good (422)
"""

from __future__ import annotations

from cloud.errors import CloudError


class PaymentError(CloudError):
    """Base class of the payment errors."""

    status: int = 400
    code: str = "bad_request"


class PaymentInvalid(PaymentError):
    """The request is malformed or not allowed."""

    status = 400
    code = "bad_request"


class PaymentNotFound(PaymentError):
    """No such payment / refund (or not visible to the caller)."""

    status = 404
    code = "not_found"


class PaymentConflict(PaymentError):
    """The request conflicts with what was done before."""

    status = 409
    code = "conflict"


class NotifyRefused(PaymentError):
    """A provider notification is malformed or does not fit the payment."""

    status = 400
    code = "notify_refused"


class SignatureError(NotifyRefused):
    """A provider notification's signature does not verify."""

    status = 401
    code = "bad_signature"


class ProviderError(PaymentError):
    """The payment provider failed or could not be reached; the request may be retried."""

    status = 502
    code = "provider_error"


class ProviderRejected(ProviderError):
    """The payment provider refused the request (retrying will not help)."""

    status = 422
    code = "provider_rejected"
