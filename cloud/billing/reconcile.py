"""Reconciliation: the platform's settlement against the charger's own transaction record.

A YKC charger bills with the model it was given and reports the result (0x3B, the connector's
``transactionRecord`` event: ``energy``, ``amount``, ``tiers[{tier, price, energy, amount}]``).
The platform bills from its own settlement; :func:`reconcile` lists where the two disagree by
more than the configured tolerances (:class:`~cloud.billing.config.ReconcileTolerances`):

* ``energy`` / ``amount``: session totals (the amount tolerance defaults to the per-tier one
  times the tiers with energy: our parts are rounded to 0.01, the charger's to 0.0001);
* ``tier.energy`` / ``tier.amount`` / ``tier.price`` per tier (a tier missing on one side counts
  as zero energy and amount; prices are compared only where the tariff has the tier);
* ``tier.unknown``: a tier name the record carries that the tariff cannot map.

A YKC record names its tiers by model position (tip, peak, flat, valley); when the tariff uses
``deep_valley`` in place of ``valley`` (see :func:`~cloud.billing.tariff.ykc_positions`), the
record's ``valley`` is the settlement's ``deep_valley``. An empty list means they agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cloud.billing.config import ReconcileTolerances
from cloud.billing.errors import BillingError
from cloud.billing.money import ZERO, to_decimal
from cloud.billing.settle import Settlement
from cloud.billing.tariff import Tariff, Tier


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One disagreement: ``theirs`` (the record) minus ``ours`` exceeds ``tolerance``."""

    field: str  # energy | amount | tier.energy | tier.amount | tier.price | tier.unknown
    tier: str | None
    ours: Decimal | None
    theirs: Decimal | None
    tolerance: Decimal

    @property
    def difference(self) -> Decimal | None:
        """``theirs - ours`` (None when one side has no value)."""
        if self.ours is None or self.theirs is None:
            return None
        return self.theirs - self.ours

    def to_doc(self) -> dict[str, Any]:
        """JSON-ready form (decimals as strings)."""
        def s(value: Decimal | None) -> str | None:
            return None if value is None else str(value)

        return {"field": self.field, "tier": self.tier, "ours": s(self.ours),
                "theirs": s(self.theirs), "difference": s(self.difference),
                "tolerance": str(self.tolerance)}


def _dec(value: Any, where: str) -> Decimal:
    try:
        return to_decimal(value, where)
    except ValueError as exc:
        raise BillingError(f"transaction record: {exc}") from None


def reconcile(settlement: Settlement, record: Mapping[str, Any], *,
              tolerances: ReconcileTolerances | None = None,
              tariff: Tariff | None = None) -> list[Discrepancy]:
    """Discrepancies between ``settlement`` and a ``transactionRecord`` (params mapping).

    ``tariff`` (the one the settlement used) maps YKC tier positions and enables price checks;
    without it the record's tier names are taken literally and prices are not compared.
    Raises :class:`BillingError` when the record is malformed.
    """
    tol = tolerances or ReconcileTolerances()
    out: list[Discrepancy] = []

    def compare(name: str, tier: str | None, ours: Decimal, theirs: Decimal,
                limit: Decimal) -> None:
        if abs(theirs - ours) > limit:
            out.append(Discrepancy(name, tier, ours, theirs, limit))

    if "energy" not in record or "amount" not in record:
        raise BillingError("transaction record: needs 'energy' and 'amount'")
    compare("energy", None, settlement.energy, _dec(record["energy"], "energy"),
            tol.total_energy_kwh)
    their_amount = _dec(record["amount"], "amount")

    rename: dict[str, Tier] = {}
    if tariff is not None and Tier.DEEP_VALLEY in tariff.tiers_used \
            and Tier.VALLEY not in tariff.tiers_used:
        rename["valley"] = Tier.DEEP_VALLEY
    theirs: dict[Tier, dict[str, Decimal]] = {}
    items = record.get("tiers") or []
    if not isinstance(items, list | tuple):
        raise BillingError("transaction record: 'tiers' must be a list")
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or "tier" not in item:
            raise BillingError(f"transaction record: tiers[{index}] needs 'tier'")
        name = str(item["tier"])
        try:
            tier = rename.get(name) or Tier(name)
        except ValueError:
            out.append(Discrepancy("tier.unknown", name, None,
                                   _dec(item.get("energy", 0), f"tiers[{index}].energy"), ZERO))
            continue
        entry = theirs.setdefault(tier, {"energy": ZERO, "amount": ZERO})
        entry["energy"] += _dec(item.get("energy", 0), f"tiers[{index}].energy")
        entry["amount"] += _dec(item.get("amount", 0), f"tiers[{index}].amount")
        if item.get("price") is not None:
            entry["price"] = _dec(item["price"], f"tiers[{index}].price")
    ours = {line.tier: line for line in settlement.tiers}
    with_energy = {t for t, line in ours.items() if line.energy} | \
        {t for t, entry in theirs.items() if entry["energy"]}
    total_tolerance = tol.total_amount_cny if tol.total_amount_cny is not None else \
        tol.tier_amount_cny * max(len(with_energy), 1)
    compare("amount", None, settlement.amount, their_amount, total_tolerance)
    for tier in sorted(set(ours) | set(theirs), key=lambda t: list(Tier).index(t)):
        line = ours.get(tier)
        their = theirs.get(tier, {})
        our_energy = line.energy if line is not None else ZERO
        our_amount = line.amount if line is not None else ZERO
        compare("tier.energy", tier.value, our_energy, their.get("energy", ZERO),
                tol.tier_energy_kwh)
        compare("tier.amount", tier.value, our_amount, their.get("amount", ZERO),
                tol.tier_amount_cny)
        if tariff is not None and "price" in their and tier in tariff.rates \
                and (their["energy"] > 0 or tier in tariff.tiers_used):
            compare("tier.price", tier.value, tariff.rates[tier].total, their["price"],
                    tol.price_cny)
    return out
