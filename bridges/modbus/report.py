"""Which decoded values are worth reporting: per-point deadbands."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from bridges.modbus.regmap import PropertyValue, RegisterMap

__all__ = ["significant_changes"]


def significant_changes(regmap: RegisterMap, previous: Mapping[str, PropertyValue],
                        current: Mapping[str, PropertyValue]) -> dict[str, PropertyValue]:
    """The values of ``current`` that differ from ``previous``.

    A numeric property whose point has a ``deadband`` counts as changed only once it moved
    by at least the deadband; compare against the last *reported* values, not the last
    read, so slow drift is still reported. Properties absent from ``previous`` always count.
    """
    bands = {p.property: p.deadband for p in regmap.readable() if p.deadband is not None}
    changed: dict[str, PropertyValue] = {}
    for prop, value in current.items():
        if prop not in previous:
            changed[prop] = value
            continue
        old = previous[prop]
        band = bands.get(prop)
        if band is not None and _numeric(value) and _numeric(old):
            if abs(_decimal(value) - _decimal(old)) >= band:
                changed[prop] = value
        elif value != old:
            changed[prop] = value
    return changed


def _numeric(value: PropertyValue) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _decimal(value: PropertyValue) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
