"""Billing core: time-of-use tariffs, exact settlement, reconciliation (Decimal only).

Pure functions and values, no I/O: :mod:`cloud.billing.tariff` (tiers, day map, ``edge_doc``),
:mod:`cloud.billing.settle` (``settle``), :mod:`cloud.billing.reconcile` (``reconcile``),
:mod:`cloud.billing.money` (parsing and rounding), :mod:`cloud.billing.config`.
See ``docs/billing.md``.
"""

from cloud.billing.config import BillingConfig, ReconcileTolerances
from cloud.billing.errors import BillingError, EdgeTariffError, SettlementError, TariffError
from cloud.billing.reconcile import Discrepancy, reconcile
from cloud.billing.settle import Anomaly, MeterLimits, Settlement, TierLine, settle
from cloud.billing.tariff import Segment, Tariff, Tier, TierRate, edge_doc, flat_tariff

__all__ = [
    "Anomaly",
    "BillingConfig",
    "BillingError",
    "Discrepancy",
    "EdgeTariffError",
    "MeterLimits",
    "ReconcileTolerances",
    "Segment",
    "Settlement",
    "SettlementError",
    "Tariff",
    "TariffError",
    "Tier",
    "TierLine",
    "TierRate",
    "edge_doc",
    "flat_tariff",
    "reconcile",
    "settle",
]
