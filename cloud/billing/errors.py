"""The exception tree of :mod:`cloud.billing`.

::

    CloudError
    └── BillingError              base of everything raised by billing
        ├── TariffError           a tariff document or tariff is invalid (clear message)
        │   └── EdgeTariffError   a valid tariff the YKC edge cannot express (4 tiers, half hours)
        └── SettlementError       settle() was called with unusable input
"""

from __future__ import annotations

from cloud.errors import CloudError


class BillingError(CloudError):
    """Base class of the billing errors."""


class TariffError(BillingError, ValueError):
    """A tariff document or tariff is invalid; the message names the field and the problem."""


class EdgeTariffError(TariffError):
    """A valid tariff that a YKC billing model (4 tiers, 48 half hours) cannot express."""


class SettlementError(BillingError, ValueError):
    """The session data handed to :func:`cloud.billing.settle.settle` cannot be settled."""
