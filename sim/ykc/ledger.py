"""The pile's own ledger: what it measured and billed per session, and whether the platform
confirmed the transaction record (0x40)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from bridges.ykc.constants import TradeFlag
from bridges.ykc.encoding import Cp56Time2a
from bridges.ykc.messages.transaction import TierUsage, TransactionRecord
from bridges.ykc.units import KWH4, YUAN4, YUAN5

from .billing import tier_amounts_yuan4

__all__ = ["TIER_NAMES", "LedgerEntry"]

TIER_NAMES = ("tip", "peak", "flat", "valley")


@dataclass(slots=True, eq=False)
class LedgerEntry:
    """One charging session as the pile measured it. Integers are wire units.

    Created when charging starts; ``energy_kwh4`` grows while charging; ``ended_at``,
    ``meter_stop_kwh4`` and ``stop_reason`` are set at the stop, when the 0x3B is built
    (``record`` holds its body, ``record_frame`` the exact bytes sent and re-sent);
    ``confirmed`` turns True when a 0x40 for the trade number arrives (``confirm_result``:
    0 accepted, 1 illegal bill — both end the retries).
    """

    trade_no: str
    gun: int
    trade_flag: int
    physical_card: str
    model_code: str
    prices_yuan5: tuple[int, int, int, int]
    """Unit price (electricity + service) of tip, peak, flat, valley, from the model pinned at start."""
    started_at: datetime
    """Pile local time (naive, the zone of the pile's clock)."""
    meter_start_kwh4: int
    vin: str = ""
    energy_kwh4: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    """Energy per tier (tip, peak, flat, valley)."""
    ended_at: datetime | None = None
    meter_stop_kwh4: int | None = None
    stop_reason: int | None = None
    record: TransactionRecord | None = None
    record_frame: bytes | None = None
    record_sends: int = 0
    confirmed: bool = False
    confirm_result: int | None = None

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    @property
    def amount_yuan4(self) -> tuple[int, ...]:
        """Amount per tier (0.0001 yuan): energy × unit price, rounded half up."""
        return tier_amounts_yuan4(self.energy_kwh4, self.prices_yuan5)

    @property
    def total_energy_kwh4(self) -> int:
        return sum(self.energy_kwh4)

    @property
    def total_amount_yuan4(self) -> int:
        """Sum of the rounded per-tier amounts."""
        return sum(self.amount_yuan4)

    def build_record(self, pile_code: str) -> TransactionRecord:
        """The 0x3B body of this (ended) session."""
        if self.ended_at is None or self.meter_stop_kwh4 is None or self.stop_reason is None:
            raise ValueError(f"session {self.trade_no} has not ended")
        end = Cp56Time2a.from_datetime(self.ended_at)
        amounts = self.amount_yuan4
        return TransactionRecord(
            trade_no=self.trade_no,
            pile_code=pile_code,
            gun=self.gun,
            start_time=Cp56Time2a.from_datetime(self.started_at),
            end_time=end,
            tiers=tuple(
                TierUsage(
                    price_yuan5=price,
                    energy_kwh4=energy,
                    loss_energy_kwh4=energy,
                    amount_yuan4=amount,
                )
                for price, energy, amount in zip(
                    self.prices_yuan5, self.energy_kwh4, amounts, strict=True
                )
            ),
            meter_start_kwh4=self.meter_start_kwh4,
            meter_end_kwh4=self.meter_stop_kwh4,
            total_energy_kwh4=self.total_energy_kwh4,
            total_loss_energy_kwh4=self.total_energy_kwh4,
            total_amount_yuan4=sum(amounts),
            vin=self.vin,
            trade_flag=self.trade_flag,
            trade_time=end,
            stop_reason=self.stop_reason,
            physical_card=self.physical_card,
        )

    def summary(self) -> dict[str, Any]:
        """Plain values in units (kWh, yuan, yuan/kWh as Decimal) for comparisons and reports."""
        amounts = self.amount_yuan4
        flag: str | int = self.trade_flag
        with contextlib.suppress(ValueError):
            flag = TradeFlag(self.trade_flag).name.lower()
        return {
            "tradeNo": self.trade_no,
            "gun": self.gun,
            "tradeFlag": flag,
            "modelCode": self.model_code,
            "startedAt": self.started_at,
            "endedAt": self.ended_at,
            "meterStart": KWH4.to_unit(self.meter_start_kwh4),
            "meterStop": None
            if self.meter_stop_kwh4 is None
            else KWH4.to_unit(self.meter_stop_kwh4),
            "tiers": {
                name: {
                    "price": YUAN5.to_unit(price),
                    "energy": KWH4.to_unit(energy),
                    "amount": YUAN4.to_unit(amount),
                }
                for name, price, energy, amount in zip(
                    TIER_NAMES, self.prices_yuan5, self.energy_kwh4, amounts, strict=True
                )
            },
            "energy": KWH4.to_unit(self.total_energy_kwh4),
            "amount": YUAN4.to_unit(sum(amounts)),
            "stopReason": self.stop_reason,
            "confirmed": self.confirmed,
        }

    def total_amount(self) -> Decimal:
        """Total amount in yuan."""
        return YUAN4.to_unit(self.total_amount_yuan4)

    def total_energy(self) -> Decimal:
        """Total energy in kWh."""
        return KWH4.to_unit(self.total_energy_kwh4)
