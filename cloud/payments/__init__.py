"""Wallet top-ups and refunds through payment providers (WeChat Pay / Alipay shaped).

Public API: :class:`~cloud.payments.service.PaymentService`, the
:class:`~cloud.payments.provider.PaymentProvider` protocol, the
:class:`~cloud.payments.simulated.SimulatedProvider`, :func:`build_providers`, the HTTP
``router`` in :mod:`cloud.payments.api`.
"""

from __future__ import annotations

from cloud.payments.config import PaymentsConfig, SimulatedProviderConfig
from cloud.payments.provider import PaymentProvider
from cloud.payments.service import PaymentService
from cloud.payments.simulated import SimulatedProvider


def build_providers(config: PaymentsConfig) -> dict[str, PaymentProvider]:
    """The configured providers by name."""
    return {name: SimulatedProvider(name, cfg) for name, cfg in config.providers.items()}


__all__ = ["PaymentProvider", "PaymentService", "PaymentsConfig", "SimulatedProvider",
           "SimulatedProviderConfig", "build_providers"]
