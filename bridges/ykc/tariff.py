"""Pure helpers to compile a time-of-use tariff into a YKC billing model.

A YKC model has exactly four tiers (tip 尖, peak 峰, flat 平, valley 谷), each with
an electricity rate and a service-fee rate in yuan/kWh, and a 48-entry day map
assigning a tier to every half hour::

    compile_billing_model(
        "0001",
        [TierPrice(Decimal("1.2"), Decimal("0.6")),   # tip
         TierPrice(Decimal("1.0"), Decimal("0.6")),   # peak
         TierPrice(Decimal("0.7"), Decimal("0.6")),   # flat
         TierPrice(Decimal("0.3"), Decimal("0.6"))],  # valley
        slots_from_periods([("10:00", "11:00", Tier.TIP), ...], default=Tier.VALLEY),
    )

Every tariff change needs a new model code (0x05/0x06 only compare codes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import time
from decimal import Decimal

from .constants import Tier
from .errors import EncodeError
from .messages.billing import BillingModel, TierRate
from .units import YUAN5

__all__ = [
    "SLOTS_PER_DAY",
    "TierPrice",
    "billing_model_prices",
    "compile_billing_model",
    "model_code",
    "slot_index",
    "slots_from_periods",
    "tier_at",
]

SLOTS_PER_DAY = 48


@dataclass(frozen=True)
class TierPrice:
    """Prices of one tier in yuan/kWh."""

    electricity: Decimal
    service: Decimal

    @property
    def total(self) -> Decimal:
        """Combined unit price, as reported per tier in 0x3B."""
        return self.electricity + self.service


def model_code(code: str | int) -> str:
    """Normalise a billing-model code to 4 BCD digits (``7`` → ``"0007"``)."""
    if isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 9999:
        return f"{code:04d}"
    if isinstance(code, str) and len(code) <= 4 and code.isdigit() and code.isascii():
        return code.rjust(4, "0")
    raise EncodeError(f"billing-model code must be 0..9999, got {code!r}")


def _parse_time(value: str | time, *, end: bool) -> int:
    """Return minutes since midnight; ``"24:00"`` is accepted as an end bound."""
    if isinstance(value, time):
        minutes = value.hour * 60 + value.minute
        if value.second or value.microsecond:
            raise EncodeError(f"{value} is not on a half-hour boundary")
    else:
        try:
            hours_text, minutes_text = value.split(":")
            minutes = int(hours_text) * 60 + int(minutes_text)
        except ValueError as exc:
            raise EncodeError(f"{value!r} is not HH:MM") from exc
    if end and minutes == 0:
        minutes = 24 * 60  # "00:00" as an end means midnight
    if minutes % 30 or not 0 <= minutes <= 24 * 60:
        raise EncodeError(f"{value} is not on a half-hour boundary within the day")
    return minutes


def slots_from_periods(
    periods: Iterable[tuple[str | time, str | time, int]],
    *,
    default: int | None = None,
) -> tuple[int, ...]:
    """Build the 48 half-hour slots from ``(start, end, tier)`` periods.

    Times are ``"HH:MM"`` strings or :class:`~datetime.time` on half-hour boundaries;
    an end of ``"24:00"`` or ``"00:00"`` means midnight; a period may wrap past
    midnight (``("23:00", "07:00", Tier.VALLEY)``). Overlaps are an error; uncovered
    slots get ``default`` or are an error when it is None.
    """
    slots: list[int | None] = [None] * SLOTS_PER_DAY
    for start, stop, tier in periods:
        _check_tier(tier)
        first = _parse_time(start, end=False) // 30
        last = _parse_time(stop, end=True) // 30
        count = (last - first) % SLOTS_PER_DAY or SLOTS_PER_DAY
        for offset in range(count):
            index = (first + offset) % SLOTS_PER_DAY
            if slots[index] is not None:
                raise EncodeError(f"periods overlap at slot {index} ({start}-{stop})")
            slots[index] = int(tier)
    if default is not None:
        _check_tier(default)
    result = []
    for index, slot in enumerate(slots):
        if slot is not None:
            result.append(slot)
        elif default is not None:
            result.append(int(default))
        else:
            clock = f"{index // 2:02d}:{index % 2 * 30:02d}"
            raise EncodeError(f"half hour {index} ({clock}) has no tier and no default")
    return tuple(result)


def _check_tier(tier: object) -> None:
    if not isinstance(tier, int) or isinstance(tier, bool) or not 0 <= tier <= 3:
        raise EncodeError(f"tier must be 0..3 (tip, peak, flat, valley), got {tier!r}")


def compile_billing_model(
    code: str | int,
    prices: Sequence[TierPrice],
    slots: Sequence[int],
    *,
    loss_ratio: int = 0,
    rounding: str | None = None,
) -> BillingModel:
    """Compile Decimal prices (tip, peak, flat, valley) and 48 slots into a model.

    Prices are converted to uint32 in 0.00001 yuan/kWh; a price with more than
    5 decimals raises :class:`EncodeError` unless ``rounding`` is given.
    """
    if len(prices) != 4:
        raise EncodeError(f"need 4 tier prices (tip, peak, flat, valley), got {len(prices)}")
    if len(slots) != SLOTS_PER_DAY:
        raise EncodeError(f"need {SLOTS_PER_DAY} half-hour slots, got {len(slots)}")
    for slot in slots:
        _check_tier(slot)
    if not isinstance(loss_ratio, int) or not 0 <= loss_ratio <= 0xFF:
        raise EncodeError(f"loss ratio must be 0..255, got {loss_ratio!r}")
    tiers = tuple(
        TierRate(
            electricity_yuan5=YUAN5.to_raw(price.electricity, rounding=rounding, size=4),
            service_yuan5=YUAN5.to_raw(price.service, rounding=rounding, size=4),
        )
        for price in prices
    )
    return BillingModel(
        model_code=model_code(code),
        tiers=tiers,
        loss_ratio=loss_ratio,
        slots=tuple(int(slot) for slot in slots),
    )


def billing_model_prices(model: BillingModel) -> tuple[TierPrice, ...]:
    """Decode a model's rates back to Decimal yuan/kWh (tip, peak, flat, valley)."""
    return tuple(
        TierPrice(YUAN5.to_unit(rate.electricity_yuan5), YUAN5.to_unit(rate.service_yuan5))
        for rate in model.tiers
    )


def slot_index(when: time) -> int:
    """Index (0..47) of the half hour containing ``when``."""
    return when.hour * 2 + when.minute // 30


def tier_at(model: BillingModel, when: time) -> Tier | int:
    """Tier in force at local time ``when`` (an int if the model holds a non-standard value)."""
    value = model.slots[slot_index(when)]
    return Tier(value) if 0 <= value <= 3 else value
