"""What orders need from the catalogue, billing and the wallets: narrow interfaces.

The service depends on these Protocols only; :mod:`cloud.orders.adapters` implements them over
the real :mod:`cloud.catalog`, :mod:`cloud.billing` and :mod:`cloud.accounts`, translating their
exceptions into this package's tree once, at the boundary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Place:
    """Where a connector is and how it is run (from the catalogue)."""

    tenant_id: str
    station_id: str
    charger_id: str
    connector_id: str
    operating_mode: str  # online_billing | offline_billing | offline_free
    protocol: str | None = None
    tz: str | None = None
    rated_kw: Decimal | None = None
    kind: str | None = None  # dc | ac
    #: start methods the operating-mode matrix offers on this charger (None: unknown)
    allowed_methods: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class TariffInForce:
    """The tariff version in force at a moment (``tariff`` is opaque to orders)."""

    tariff_id: str
    version: str
    tariff: Any


@dataclass(frozen=True, slots=True)
class BillTier:
    """One tier of a settlement."""

    tier: str
    energy: Decimal
    electricity_rate: Decimal
    service_rate: Decimal
    electricity_amount: Decimal
    service_amount: Decimal

    @property
    def total_amount(self) -> Decimal:
        return self.electricity_amount + self.service_amount


@dataclass(frozen=True, slots=True)
class Bill:
    """A settlement as orders store it (``raw``: the billing module's own object)."""

    energy: Decimal
    electricity_amount: Decimal
    service_amount: Decimal
    total_amount: Decimal
    tiers: Sequence[BillTier]
    anomalies: Sequence[Mapping[str, Any]] = ()
    #: the billing module's own settlement and the tariff it used (for reconciliation)
    raw: Any = field(default=None, compare=False)
    tariff: Any = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Payer:
    """Whose wallet pays an order."""

    user_id: str
    wallet_id: str | None = None


class Catalogue(Protocol):
    """Stations, chargers, connectors and tariffs."""

    def place(self, gw: str, device: str) -> Place | None:
        """The connector ``device`` behind gateway ``gw`` (None when unknown)."""
        ...

    def tariff(self, station_id: str, at_ms: int) -> TariffInForce | None:
        """The tariff version in force at ``at_ms`` at the station (None when there is none)."""
        ...


class Biller(Protocol):
    """Settlement and reconciliation (pure)."""

    def settle(self, tariff: Any, samples: Sequence[tuple[int, Decimal]], *, started_ms: int,
               ended_ms: int, meter_start: Decimal | None, meter_stop: Decimal | None,
               rated_kw: Decimal | None) -> Bill:
        """Price a session: samples are (ts ms, cumulative meter kWh). Raises
        :class:`~cloud.orders.errors.SettlementFailed` when the input cannot be settled."""
        ...

    def reconcile(self, bill: Bill, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Differences between a settlement and the charger's own record (JSON-safe)."""
        ...


class Wallets(Protocol):
    """Users' wallets. Every money movement is idempotent by ``key``."""

    def payer(self, tenant_id: str, id_tag: str, id_type: str | None) -> Payer | None:
        """Who pays for a session started with ``id_tag`` (None when nobody)."""
        ...

    def debit(self, payer: Payer, amount: Decimal, *, key: str, ref: str) -> str:
        """Take ``amount``; returns the ledger entry id. Raises
        :class:`~cloud.orders.errors.InsufficientFunds` or :class:`~cloud.orders.errors.NoPayer`."""
        ...

    def refund(self, payer: Payer, amount: Decimal, *, key: str, ref: str) -> str:
        """Give ``amount`` back; returns the ledger entry id."""
        ...
