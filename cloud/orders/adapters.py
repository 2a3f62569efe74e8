"""The ports of :mod:`cloud.orders.ports` over the real catalogue, billing and accounts.

Each adapter translates the other package's values and exceptions once, here:

* :class:`CatalogueAdapter` (:class:`cloud.catalog.repo.Catalog`): ``resolve_connector`` ->
  :class:`Place` with the start methods :func:`cloud.catalog.modes.start_methods` offers;
  ``tariff_at`` -> :class:`TariffInForce` (tariff row id and version as strings).
* :class:`BillingAdapter` (:mod:`cloud.billing`): ``settle`` with the connector's meter limits
  (:meth:`BillingConfig.limits`), ``reconcile`` with the configured tolerances; a
  :class:`~cloud.billing.errors.BillingError` becomes :class:`SettlementFailed`.
* :class:`WalletsAdapter` (:class:`cloud.accounts.service.AccountService`): ``resolve_id_tag``
  -> :class:`Payer`; ``debit``/``refund`` by wallet id (else user id);
  ``InsufficientFunds`` -> :class:`~cloud.orders.errors.InsufficientFunds`, ``NotFound`` ->
  :class:`NoPayer`, any other accounts error -> :class:`PaymentError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from cloud.accounts import errors as accounts_errors
from cloud.accounts.service import AccountService
from cloud.billing.config import BillingConfig
from cloud.billing.errors import BillingError
from cloud.billing.reconcile import reconcile
from cloud.billing.settle import Settlement, TierLine, settle
from cloud.billing.tariff import Tariff, Tier
from cloud.catalog.modes import start_methods
from cloud.catalog.repo import Catalog
from cloud.orders.errors import (
    InsufficientFunds,
    NoPayer,
    PaymentError,
    SettlementFailed,
)
from cloud.orders.ports import Bill, BillTier, Payer, Place, TariffInForce

#: connector.yaml idType -> what accounts can resolve (None: nothing identifies the driver)
_RESOLVABLE = {"card": "card", "app": "app", "central": "app", "vin": "vin", "emaid": "emaid",
               "unknown": "unknown"}


class CatalogueAdapter:
    """:class:`~cloud.orders.ports.Catalogue` over :class:`cloud.catalog.repo.Catalog`."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def place(self, gw: str, device: str) -> Place | None:
        ref = self.catalog.resolve_connector(gw, device)
        if ref is None:
            return None
        try:
            allowed: frozenset[str] | None = frozenset(
                m.value for m in start_methods(ref.kind, ref.operating_mode))
        except (KeyError, ValueError):
            allowed = None
        return Place(tenant_id=ref.tenant_id, station_id=ref.station_id,
                     charger_id=ref.charger_id, connector_id=ref.connector_id,
                     operating_mode=ref.operating_mode, protocol=ref.protocol, tz=ref.tz,
                     rated_kw=ref.rated_kw, kind=ref.kind, allowed_methods=allowed)

    def tariff(self, station_id: str, at_ms: int) -> TariffInForce | None:
        found = self.catalog.tariff_at(station_id, at_ms)
        if found is None:
            return None
        return TariffInForce(tariff_id=str(found.ref.id), version=str(found.ref.version),
                             tariff=found.tariff)


class BillingAdapter:
    """:class:`~cloud.orders.ports.Biller` over :mod:`cloud.billing`."""

    def __init__(self, config: BillingConfig | None = None) -> None:
        self.config = config or BillingConfig()

    def settle(self, tariff: Any, samples: Sequence[tuple[int, Decimal]], *, started_ms: int,
               ended_ms: int, meter_start: Decimal | None, meter_stop: Decimal | None,
               rated_kw: Decimal | None) -> Bill:
        try:
            result = settle(tariff, samples, started_ms=started_ms, ended_ms=ended_ms,
                            meter_start=meter_start, meter_stop=meter_stop,
                            limits=self.config.limits(rated_kw))
        except BillingError as exc:
            raise SettlementFailed(str(exc)) from exc
        tiers = [BillTier(tier=line.tier.value, energy=line.energy,
                          electricity_rate=line.electricity_rate, service_rate=line.service_rate,
                          electricity_amount=line.electricity_amount,
                          service_amount=line.service_amount) for line in result.tiers]
        return Bill(energy=result.energy, electricity_amount=result.electricity_amount,
                    service_amount=result.service_amount, total_amount=result.amount,
                    tiers=tiers, anomalies=[a.to_doc() for a in result.anomalies],
                    raw=result, tariff=tariff)

    def reconcile(self, bill: Bill, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        settlement = bill.raw if isinstance(bill.raw, Settlement) else _settlement_of(bill)
        tariff = bill.tariff if isinstance(bill.tariff, Tariff) else None
        try:
            found = reconcile(settlement, record, tolerances=self.config.reconcile,
                              tariff=tariff)
        except BillingError as exc:
            return [{"field": "record", "tier": None, "ours": None, "theirs": None,
                     "difference": None, "detail": str(exc)}]
        return [d.to_doc() for d in found]


def _settlement_of(bill: Bill) -> Settlement:
    """A billing Settlement rebuilt from a stored bill (for a record that arrives late)."""
    lines = tuple(TierLine(Tier(t.tier), t.energy, t.electricity_rate, t.service_rate,
                           t.electricity_amount, t.service_amount) for t in bill.tiers)
    return Settlement(started_ms=0, ended_ms=0, method="stored", tiers=lines,
                      energy=bill.energy, electricity_amount=bill.electricity_amount,
                      service_amount=bill.service_amount, amount=bill.total_amount)


class WalletsAdapter:
    """:class:`~cloud.orders.ports.Wallets` over :class:`cloud.accounts.service.AccountService`."""

    def __init__(self, accounts: AccountService) -> None:
        self.accounts = accounts

    def payer(self, tenant_id: str, id_tag: str, id_type: str | None) -> Payer | None:
        kind = _RESOLVABLE.get(id_type or "unknown")
        if kind is None:
            return None
        account = self.accounts.resolve_id_tag(tenant_id, id_tag, kind)
        if account is None or account.user_id is None:
            return None
        return Payer(user_id=account.user_id, wallet_id=account.wallet_id)

    def debit(self, payer: Payer, amount: Decimal, *, key: str, ref: str) -> str:
        try:
            entry = self.accounts.debit(payer.wallet_id or payer.user_id, amount, key=key,
                                        ref=ref)
        except accounts_errors.InsufficientFunds as exc:
            raise InsufficientFunds(str(exc)) from exc
        except accounts_errors.NotFound as exc:
            raise NoPayer(str(exc)) from exc
        except accounts_errors.AccountError as exc:
            raise PaymentError(str(exc)) from exc
        return str(entry.id)

    def refund(self, payer: Payer, amount: Decimal, *, key: str, ref: str) -> str:
        try:
            entry = self.accounts.refund(payer.wallet_id or payer.user_id, amount, key=key,
                                         ref=ref)
        except accounts_errors.NotFound as exc:
            raise NoPayer(str(exc)) from exc
        except accounts_errors.AccountError as exc:
            raise PaymentError(str(exc)) from exc
        return str(entry.id)
