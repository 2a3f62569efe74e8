"""The pile's meter and tariff arithmetic, in the codec's integer units (pure, no I/O).

Units are those of the wire fields, so the 0x13 and 0x3B values are computed exactly:

* energy ``_kwh4``: 0.0001 kWh;
* unit price ``_yuan5``: 0.00001 yuan/kWh (electricity + service rate of one tier);
* amount ``_yuan4``: 0.0001 yuan.

Energy is power × time with an integer remainder carried between steps, so no energy is lost to
rounding: ``1 kWh4 = 0.1 Wh = 360 W·s = 360 000 000 W·µs``. A step is split at the half-hour
boundaries of the pile's local clock and each part is booked to the tier of its half hour; the
carried remainder (< 0.0001 kWh) is booked to the tier in which it completes a whole unit. The
per-tier energies therefore always sum exactly to the total.

Amount of a tier = ``energy_kwh4 × price_yuan5 / 100 000`` rounded half up to 0.0001 yuan
(``kwh4 × yuan5`` is in 1e-9 yuan). The total amount is the sum of the rounded tier amounts; the
running amount in 0x13 uses the same rule, so the last 0x13 and the 0x3B agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bridges.ykc.messages.billing import BillingModel

__all__ = [
    "WATT_MICROSECONDS_PER_KWH4",
    "accrue_energy",
    "amount_yuan4",
    "model_is_valid",
    "tier_amounts_yuan4",
    "tier_prices_yuan5",
]

WATT_MICROSECONDS_PER_KWH4 = 360_000_000
"""0.0001 kWh expressed in W·µs."""

_YUAN5_TIMES_KWH4_PER_YUAN4 = 100_000
_HALF_HOUR = timedelta(minutes=30)
_MICROSECOND = timedelta(microseconds=1)


def tier_prices_yuan5(model: BillingModel) -> tuple[int, int, int, int]:
    """Combined unit price (electricity + service) of tip, peak, flat, valley in 0.00001 yuan/kWh."""
    tip, peak, flat, valley = (rate.electricity_yuan5 + rate.service_yuan5 for rate in model.tiers)
    return tip, peak, flat, valley


def amount_yuan4(energy_kwh4: int, price_yuan5: int) -> int:
    """``energy × price`` in 0.0001 yuan, rounded half up."""
    return (energy_kwh4 * price_yuan5 + _YUAN5_TIMES_KWH4_PER_YUAN4 // 2) // (
        _YUAN5_TIMES_KWH4_PER_YUAN4
    )


def tier_amounts_yuan4(
    energies_kwh4: tuple[int, ...] | list[int], prices_yuan5: tuple[int, ...]
) -> tuple[int, ...]:
    """Per-tier amounts (0.0001 yuan) of per-tier energies at per-tier prices."""
    return tuple(amount_yuan4(energy, price) for energy, price in zip(energies_kwh4, prices_yuan5, strict=True))


def model_is_valid(model: BillingModel) -> bool:
    """Four tiers and 48 half-hour slots that each name tier 0..3."""
    return (
        len(model.tiers) == 4
        and len(model.slots) == 48
        and all(0 <= slot <= 3 for slot in model.slots)
    )


def _slot(when: datetime) -> int:
    return when.hour * 2 + when.minute // 30


def accrue_energy(
    slots: tuple[int, ...],
    energies_kwh4: list[int],
    remainder: int,
    power_w: int,
    start: datetime,
    duration_us: int,
) -> tuple[int, int]:
    """Deliver ``power_w`` for ``duration_us`` from local time ``start``; book it per tier.

    ``energies_kwh4`` (tip, peak, flat, valley) is updated in place. ``remainder`` is the W·µs
    carried from the previous step. Returns ``(energy added in kWh4, new remainder)``.
    """
    added = 0
    when = start
    left = duration_us
    while left > 0:
        slot_start = when.replace(minute=when.minute // 30 * 30, second=0, microsecond=0)
        to_boundary = (slot_start + _HALF_HOUR - when) // _MICROSECOND
        step = min(left, max(to_boundary, 1))
        units, remainder = divmod(remainder + power_w * step, WATT_MICROSECONDS_PER_KWH4)
        energies_kwh4[slots[_slot(when)]] += units
        added += units
        left -= step
        when += timedelta(microseconds=step)
    return added, remainder
