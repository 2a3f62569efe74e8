"""Exact conversions between raw wire integers and engineering units.

Frame dataclasses keep every scaled quantity as the raw integer sent on the wire
(lossless, re-encodes byte for byte). The field-name suffix names the scale, and
each suffix has a :class:`Scale` constant here:

=================  ============  ==========================================  ========
suffix / constant  unit          raw → value                                  example
=================  ============  ==========================================  ========
``_v1``  V1        V             raw × 0.1                                    0x13 voltage
``_v2``  V2        V             raw × 0.01                                   BMS cell voltage
``_a1``  A1        A             raw × 0.1 (no offset)                        0x13 current
``_a1_off400``     A             raw × 0.1 − 400                              BMS currents
   A1_OFF400
``_kwh4`` KWH4     kWh           raw × 0.0001                                 energies, meters
``_kwh1`` KWH1     kWh           raw × 0.1                                    BMS energies
``_yuan5`` YUAN5   yuan/kWh      raw × 0.00001                                rates, unit prices
``_yuan4`` YUAN4   yuan          raw × 0.0001                                 amounts
``_yuan2`` YUAN2   yuan          raw × 0.01                                   balances
``_c_off50``       °C            raw − 50                                     temperatures
   C_OFF50
``_pct1`` PCT1     %             raw × 0.1                                    BMS SOC (0x17)
``_ah1``  AH1      Ah            raw × 0.1                                    rated capacity
=================  ============  ==========================================  ========

Unsuffixed integers are already in their unit (``soc_pct`` %, ``*_min`` minutes,
``power_kw`` kW, ``max_power_pct`` %). Conversions use :class:`~decimal.Decimal`
only: ``to_unit`` is always exact; ``to_raw`` refuses floats and, unless a
``rounding`` mode (e.g. ``decimal.ROUND_HALF_UP``) is given, any value that is not
an exact multiple of the step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .errors import EncodeError

__all__ = [
    "A1",
    "A1_OFF400",
    "AH1",
    "C_OFF50",
    "KWH1",
    "KWH4",
    "PCT1",
    "SCALES",
    "V1",
    "V2",
    "YUAN2",
    "YUAN4",
    "YUAN5",
    "Scale",
    "unit_values",
]


@dataclass(frozen=True)
class Scale:
    """value = raw × 10**-places − offset, in ``unit``."""

    places: int
    unit: str
    offset: int = 0

    def to_unit(self, raw: int) -> Decimal:
        """Raw wire integer → exact Decimal value."""
        return Decimal(raw).scaleb(-self.places) - self.offset

    def to_raw(
        self,
        value: Decimal | int | str,
        *,
        rounding: str | None = None,
        size: int | None = None,
    ) -> int:
        """Decimal value → raw integer (checked to fit ``size`` unsigned bytes if given)."""
        if isinstance(value, float | bool) or not isinstance(value, Decimal | int | str):
            raise EncodeError(f"{value!r}: use Decimal, int or str, never float")
        try:
            number = Decimal(value)
        except InvalidOperation as exc:
            raise EncodeError(f"{value!r} is not a number") from exc
        if not number.is_finite():
            raise EncodeError(f"{value!r} is not a finite number")
        scaled = (number + self.offset).scaleb(self.places)
        integral = scaled.to_integral_value()
        if scaled != integral:
            if rounding is None:
                raise EncodeError(f"{value} {self.unit} is not a multiple of 1e-{self.places}")
            integral = scaled.quantize(Decimal(1), rounding=rounding)
        raw = int(integral)
        if raw < 0 or (size is not None and raw >= 1 << (8 * size)):
            raise EncodeError(f"{value} {self.unit} is out of range for the wire field")
        return raw


V1 = Scale(1, "V")
V2 = Scale(2, "V")
A1 = Scale(1, "A")
A1_OFF400 = Scale(1, "A", offset=400)
KWH4 = Scale(4, "kWh")
KWH1 = Scale(1, "kWh")
YUAN5 = Scale(5, "yuan/kWh")
YUAN4 = Scale(4, "yuan")
YUAN2 = Scale(2, "yuan")
C_OFF50 = Scale(0, "°C", offset=50)
PCT1 = Scale(1, "%")
AH1 = Scale(1, "Ah")

SCALES: dict[str, tuple[Scale, str]] = {
    "_a1_off400": (A1_OFF400, "_a"),
    "_c_off50": (C_OFF50, "_c"),
    "_yuan5": (YUAN5, "_yuan_per_kwh"),
    "_yuan4": (YUAN4, "_yuan"),
    "_yuan2": (YUAN2, "_yuan"),
    "_kwh4": (KWH4, "_kwh"),
    "_kwh1": (KWH1, "_kwh"),
    "_pct1": (PCT1, "_pct"),
    "_ah1": (AH1, "_ah"),
    "_v1": (V1, "_v"),
    "_v2": (V2, "_v"),
    "_a1": (A1, "_a"),
}
"""Field-name suffix → (scale, replacement suffix naming the unit)."""


def unit_values(obj: object) -> dict[str, Decimal]:
    """Convert every suffixed integer field of a frame dataclass to its unit.

    Keys replace the scale suffix by the unit: ``output_voltage_v1`` →
    ``output_voltage_v``, ``energy_kwh4`` → ``energy_kwh``, ``amount_yuan4`` →
    ``amount_yuan``, ``cable_temp_c_off50`` → ``cable_temp_c``. Nested dataclasses
    (e.g. ``TransactionRecord.tiers``) are not descended into; call this on them.
    """
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError("unit_values() needs a dataclass instance")
    values: dict[str, Decimal] = {}
    for field in dataclasses.fields(obj):
        raw = getattr(obj, field.name)
        if not isinstance(raw, int):
            continue
        for suffix, (scale, unit_suffix) in SCALES.items():
            if field.name.endswith(suffix):
                values[field.name[: -len(suffix)] + unit_suffix] = scale.to_unit(raw)
                break
    return values
