"""Meter sanity at order level: what a finished session hands to the settlement.

The settlement (:func:`cloud.billing.settle.settle`) checks every interval between readings
(a meter going down, a jump, mean power above the connector's limit) and bills only accepted
intervals. Before that, orders apply these rules (a failure leaves the order unbilled with the
reason; a repair is noted in ``anomalies``):

1. Times: the session needs a start and an end (else it waits for more news), and may not end
   before it starts (``end_before_start``, a meter anomaly).
2. Registers: a missing meter start is derived as stop - reported energy; a missing meter stop
   as start + reported energy, else the last register sampled. A stop below the start with no
   samples in between is a ``meter_regression`` (meter anomaly). With no register at all, the
   reported energy (else the samples' session energy) is billed on a relative scale from 0.
3. A reported energy that differs from the registers by more than 0.001 kWh is noted
   (``energy_mismatch``); the registers are billed.
4. The samples handed over are those inside [start, end], in time order; a sample that only
   carries session energy is placed on the register scale as meter start + energy.
5. After the settlement: if it billed no energy although the charger reported some, the order
   is a ``meter_anomaly`` (``nothing_billable``) with the settlement's anomalies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from cloud.orders.models import Order, OrderSample

_MISMATCH = Decimal("0.001")
_ZERO = Decimal("0.0000")


@dataclass(slots=True)
class Inputs:
    """What the settlement gets."""

    started_ms: int
    ended_ms: int
    meter_start: Decimal
    meter_stop: Decimal
    samples: list[tuple[int, Decimal]]
    notes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def energy(self) -> Decimal:
        return self.meter_stop - self.meter_start


@dataclass(frozen=True, slots=True)
class Unbillable:
    """Why a session cannot be billed (yet)."""

    code: str
    detail: str
    #: True: more news may fix it (wait); False: a meter anomaly
    waiting: bool = False


def billing_inputs(order: Order, samples: Sequence[OrderSample]) -> Inputs | Unbillable:
    """Apply rules 1-4 of the module docstring."""
    started, ended = order.started_ms, order.ended_ms
    if started is None:
        return Unbillable("no_start_time", "the session's start time is not known yet",
                          waiting=True)
    if ended is None:
        return Unbillable("no_end_time", "the session's end time is not known yet", waiting=True)
    if ended < started:
        return Unbillable("end_before_start", f"the session ends ({ended}) before it starts "
                          f"({started})")
    notes: list[tuple[str, str]] = []
    ordered = sorted(samples, key=lambda s: s.ts_ms)
    inside = [s for s in ordered if started <= s.ts_ms <= ended]
    registers = [s.meter for s in ordered if s.meter is not None]
    reported = order.reported_energy
    start, stop = order.meter_start, order.meter_stop
    if start is not None and stop is None:
        if reported is not None:
            stop = start + reported
        elif registers and registers[-1] >= start:
            stop = registers[-1]
            notes.append(("meter_stop_from_samples", f"meter stop is the last register "
                          f"sampled, {stop} kWh"))
    elif start is None and stop is not None and reported is not None and reported <= stop:
        start = stop - reported
        notes.append(("meter_start_derived", f"meter start {start} kWh = stop - energy"))
    relative = start is None or stop is None
    if relative:
        energies = [s.energy for s in ordered if s.energy is not None]
        if reported is not None:
            start, stop = _ZERO, reported
        elif energies:
            start, stop = _ZERO, max(energies)
        elif len(registers) >= 2:
            start, stop = _ZERO, registers[-1] - registers[0]
        else:
            return Unbillable("no_energy", "neither meter values nor an energy were reported",
                              waiting=True)
        notes.append(("relative_energy", "no meter register: billed on the session energy"))
    assert start is not None
    assert stop is not None
    if stop < start and not any(s.meter is not None for s in inside):
        return Unbillable("meter_regression", f"meter stop {stop} kWh is below meter start "
                          f"{start} kWh")
    if not relative and reported is not None and abs(reported - (stop - start)) > _MISMATCH:
        notes.append(("energy_mismatch", f"reported energy {reported} kWh, registers "
                      f"{stop - start} kWh; the registers are billed"))
    series: list[tuple[int, Decimal]] = []
    for s in inside:
        if relative:
            value = s.energy if s.energy is not None else None
        else:
            value = s.meter if s.meter is not None else (
                start + s.energy if s.energy is not None else None)
        if value is not None:
            series.append((s.ts_ms, value))
    return Inputs(started_ms=started, ended_ms=ended, meter_start=start, meter_stop=stop,
                  samples=series, notes=notes)
