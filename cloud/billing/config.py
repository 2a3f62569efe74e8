"""Billing configuration (a ``billing:`` section of the cloud config; unknown keys refused)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from cloud.billing.settle import MeterLimits
from cloud.strict import Strict


class ReconcileTolerances(Strict):
    """How far a charger's own record may differ from the settlement before it is flagged.

    A difference is a discrepancy when ``abs(ours - theirs) > tolerance``.
    """

    #: per tier: a charger attributes energy at its own sampling steps around tier boundaries
    tier_energy_kwh: Decimal = Field(default=Decimal("0.01"), ge=0)
    #: session total: both sides read the same meter
    total_energy_kwh: Decimal = Field(default=Decimal("0.001"), ge=0)
    #: per tier amount (electricity + service, CNY)
    tier_amount_cny: Decimal = Field(default=Decimal("0.01"), ge=0)
    #: total amount (CNY); None: ``tier_amount_cny`` x the tiers with energy on either side,
    #: which is what rounding each part to 0.01 (ours) vs 0.0001 (the charger's) can explain
    total_amount_cny: Decimal | None = Field(default=None, ge=0)
    #: per tier unit price (electricity + service, CNY/kWh): the charger must run our model
    price_cny: Decimal = Field(default=Decimal(0), ge=0)


class BillingConfig(Strict):
    """Settlement limits and reconciliation tolerances."""

    #: mean power above this between two meter readings is implausible (not billed)
    max_kw: Decimal = Field(default=Decimal(600), gt=0)
    #: ... and so is more than this factor times the charger's rated power
    rated_factor: Decimal = Field(default=Decimal("1.2"), gt=0)
    reconcile: ReconcileTolerances = ReconcileTolerances()

    def limits(self, rated_kw: Decimal | None = None) -> MeterLimits:
        """Meter limits for a connector of ``rated_kw`` (None: unknown rating)."""
        return MeterLimits(max_kw=self.max_kw, rated_kw=rated_kw, rated_factor=self.rated_factor)
