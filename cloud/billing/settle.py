"""Settlement: a session's meter readings + the tariff in force at its start -> an exact bill.

Algorithm (also in ``docs/billing.md``):

1. **Readings.** ``meter_start`` at ``started_ms`` (when given), the samples ``(ts_ms, kWh)``
   in time order, ``meter_stop`` at ``ended_ms`` (when given). A sample stamped outside the
   session is moved to the nearer end (anomaly ``outside_session``, its energy is kept); a
   negative or non-numeric reading is dropped (``bad_reading``).
2. **Meter sanity.** Walking the readings, each one is checked against the last accepted one
   (the reference): the meter must not go down, and the mean power over the interval must not
   exceed the limit (``min(max_kw, rated_factor x rated_kw)``, by default 600 kW, or 1.2 x the
   connector's rating); equal readings are always fine. A reading that fails is decided with one
   look-ahead:

   * if the *next* reading is plausible from it but not from the reference, the meter (or the
     reference, e.g. a ``meter_start`` of 0 sent by a charger that had no value) jumped: the
     failing interval is not billed (``meter_jump`` / ``meter_reset``, with the excluded kWh)
     and the reading becomes the new reference;
   * otherwise it is a glitch: the reading is dropped (``meter_decreased``,
     ``implausible_power``, ``no_time``) and the reference stays, so no energy is lost or
     invented by the glitch.

3. **Attribution.** The energy of every accepted interval is split over the tariff segments it
   overlaps (tier boundaries and local midnights, see :meth:`Tariff.segments`) **in proportion
   to time**: meter energy between two readings is assumed to flow at constant power. A session
   without samples therefore falls back to ``meter_stop - meter_start`` spread by time share over
   the session (``method = "meter"``); with no usable pair of readings nothing is billed
   (``method = "none"``, anomaly ``no_meter_data``).
4. **Rounding** (the one rule, applied once at the end, ``ROUND_HALF_UP`` everywhere):

   * total energy = the exact sum rounded to 0.0001 kWh;
   * tier energies: each exact tier energy rounded *down* to 0.0001 kWh, then the 0.0001 kWh
     units still missing to reach the total go to the tiers with the largest remainders (ties:
     tier order tip -> deep_valley). So the tier energies always add up to the total energy;
   * per tier, electricity amount = tier energy x electricity rate and service amount = tier
     energy x service rate, each rounded to 0.01 CNY;
   * totals are sums of the rounded parts, so the parts always add up to the totals:
     ``amount = electricity_amount + service_amount`` and each equals the sum over tiers.

The function is pure (no clock, no I/O): settling the same input twice gives the same result, so
it can be re-run on redelivered events.
"""

from __future__ import annotations

import bisect
import decimal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from cloud.billing.errors import SettlementError
from cloud.billing.money import KWH, ZERO, q_cny, q_kwh, to_decimal
from cloud.billing.tariff import TIER_ORDER, Segment, Tariff, Tier

MS_PER_HOUR = Decimal(3_600_000)


@dataclass(frozen=True, slots=True)
class MeterLimits:
    """How fast a meter may plausibly count: ``min(max_kw, rated_factor x rated_kw)``."""

    max_kw: Decimal = Decimal(600)
    rated_kw: Decimal | None = None
    rated_factor: Decimal = Decimal("1.2")

    @property
    def limit_kw(self) -> Decimal:
        """The highest plausible mean power between two readings."""
        if self.rated_kw is None or self.rated_kw <= 0:
            return self.max_kw
        return min(self.max_kw, self.rated_kw * self.rated_factor)


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Something wrong with the session's meter data; ``energy`` kWh were not billed for it."""

    kind: str
    ts_ms: int
    detail: str
    energy: Decimal = ZERO

    def to_doc(self) -> dict[str, Any]:
        """JSON-ready form (decimals as strings)."""
        return {"kind": self.kind, "ts": self.ts_ms, "detail": self.detail,
                "energy": str(self.energy)}


@dataclass(frozen=True, slots=True)
class TierLine:
    """One tier of a settlement."""

    tier: Tier
    energy: Decimal  # kWh, 4 decimals
    electricity_rate: Decimal  # CNY/kWh
    service_rate: Decimal
    electricity_amount: Decimal  # CNY, 2 decimals
    service_amount: Decimal

    @property
    def amount(self) -> Decimal:
        """Electricity + service amount of the tier."""
        return self.electricity_amount + self.service_amount

    def to_doc(self) -> dict[str, Any]:
        """JSON-ready form (decimals as strings)."""
        return {"tier": self.tier.value, "energy": str(self.energy),
                "electricityRate": str(self.electricity_rate),
                "serviceRate": str(self.service_rate),
                "electricityAmount": str(self.electricity_amount),
                "serviceAmount": str(self.service_amount), "amount": str(self.amount)}


@dataclass(frozen=True, slots=True)
class Settlement:
    """The exact bill of one session."""

    started_ms: int
    ended_ms: int
    method: str  # samples | meter | none
    tiers: tuple[TierLine, ...]
    energy: Decimal  # kWh, 4 decimals, = sum of tier energies
    electricity_amount: Decimal  # CNY, = sum over tiers
    service_amount: Decimal
    amount: Decimal  # = electricity_amount + service_amount
    anomalies: tuple[Anomaly, ...] = ()
    meter_start: Decimal | None = None  # first accepted reading
    meter_stop: Decimal | None = None  # last accepted reading

    def tier(self, tier: Tier | str) -> TierLine | None:
        """The line of ``tier`` (None when the tariff does not use it)."""
        wanted = Tier(tier)
        return next((line for line in self.tiers if line.tier is wanted), None)

    def to_doc(self) -> dict[str, Any]:
        """JSON-ready form (decimals as strings), read back by :meth:`from_doc`."""
        return {
            "startedAt": self.started_ms, "endedAt": self.ended_ms, "method": self.method,
            "tiers": [line.to_doc() for line in self.tiers],
            "energy": str(self.energy), "electricityAmount": str(self.electricity_amount),
            "serviceAmount": str(self.service_amount), "amount": str(self.amount),
            "anomalies": [a.to_doc() for a in self.anomalies],
            "meterStart": None if self.meter_start is None else str(self.meter_start),
            "meterStop": None if self.meter_stop is None else str(self.meter_stop),
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Settlement:
        """Read back :meth:`to_doc`."""
        def dec(value: Any) -> Decimal:
            return to_decimal(value, "settlement")

        return cls(
            started_ms=int(doc["startedAt"]), ended_ms=int(doc["endedAt"]),
            method=str(doc["method"]),
            tiers=tuple(TierLine(Tier(t["tier"]), dec(t["energy"]), dec(t["electricityRate"]),
                                 dec(t["serviceRate"]), dec(t["electricityAmount"]),
                                 dec(t["serviceAmount"])) for t in doc["tiers"]),
            energy=dec(doc["energy"]), electricity_amount=dec(doc["electricityAmount"]),
            service_amount=dec(doc["serviceAmount"]), amount=dec(doc["amount"]),
            anomalies=tuple(Anomaly(a["kind"], int(a["ts"]), a["detail"], dec(a["energy"]))
                            for a in doc.get("anomalies", [])),
            meter_start=None if doc.get("meterStart") is None else dec(doc["meterStart"]),
            meter_stop=None if doc.get("meterStop") is None else dec(doc["meterStop"]),
        )


@dataclass(frozen=True, slots=True)
class _Reading:
    ts: int
    kwh: Decimal
    source: str  # meter_start | sample | meter_stop


def _check(ref: _Reading, reading: _Reading, limit_kw: Decimal) -> str | None:
    """None when ``reading`` is plausible after ``ref``, else the anomaly kind."""
    delta = reading.kwh - ref.kwh
    if delta < 0:
        return "meter_decreased"
    if delta == 0:
        return None
    elapsed = reading.ts - ref.ts
    if elapsed <= 0:
        return "no_time"
    if delta * MS_PER_HOUR > limit_kw * elapsed:  # delta / hours > limit, without dividing
        return "implausible_power"
    return None


def _readings(samples: Iterable[tuple[int, Any]], started_ms: int, ended_ms: int,
              meter_start: Any, meter_stop: Any,
              anomalies: list[Anomaly]) -> list[_Reading]:
    out: list[tuple[int, int, int, _Reading]] = []

    def add(ts: int, value: Any, source: str, order: int) -> None:
        try:
            kwh = to_decimal(value, source)
        except ValueError as exc:
            anomalies.append(Anomaly("bad_reading", ts, str(exc)))
            return
        if kwh < 0:
            anomalies.append(Anomaly("bad_reading", ts, f"{source} reading {kwh} kWh < 0"))
            return
        out.append((ts, order, len(out), _Reading(ts, kwh, source)))

    if meter_start is not None:
        add(started_ms, meter_start, "meter_start", 0)
    for item in samples:
        try:
            ts_raw, value = item
        except (TypeError, ValueError):
            raise SettlementError(f"a sample is (ts_ms, kWh), got {item!r}") from None
        if isinstance(ts_raw, bool) or not isinstance(ts_raw, int):
            raise SettlementError(f"sample time must be int ms, got {ts_raw!r}")
        ts = ts_raw
        if not started_ms <= ts <= ended_ms:
            clamped = min(max(ts, started_ms), ended_ms)
            anomalies.append(Anomaly(
                "outside_session", ts,
                f"sample at {ts} is outside the session [{started_ms}, {ended_ms}]; "
                f"counted at {clamped}"))
            ts = clamped
        add(ts, value, "sample", 1)
    if meter_stop is not None:
        add(ended_ms, meter_stop, "meter_stop", 2)
    out.sort(key=lambda item: item[:3])
    return [item[3] for item in out]


def _accepted_intervals(readings: list[_Reading], limit_kw: Decimal,
                        anomalies: list[Anomaly]) -> list[tuple[_Reading, _Reading]]:
    intervals: list[tuple[_Reading, _Reading]] = []
    ref: _Reading | None = None
    for index, reading in enumerate(readings):
        if ref is None:
            ref = reading
            continue
        problem = _check(ref, reading, limit_kw)
        if problem is None:
            intervals.append((ref, reading))
            ref = reading
            continue
        delta = reading.kwh - ref.kwh
        following = readings[index + 1] if index + 1 < len(readings) else None
        if following is not None and _check(reading, following, limit_kw) is None \
                and _check(ref, following, limit_kw) is not None:
            kind = "meter_reset" if delta < 0 else "meter_jump"
            anomalies.append(Anomaly(
                kind, reading.ts,
                f"{reading.source} {reading.kwh} kWh after {ref.kwh} kWh at {ref.ts}: the "
                "readings that follow agree with it, so it is the new reference; the interval "
                "is not billed", max(delta, ZERO)))
            ref = reading
        else:
            anomalies.append(Anomaly(
                problem, reading.ts,
                f"{reading.source} {reading.kwh} kWh after {ref.kwh} kWh at {ref.ts} "
                f"({delta:+} kWh in {reading.ts - ref.ts} ms, limit {limit_kw} kW): dropped"))
    return intervals


def _spread(segments: list[Segment], lo: int, hi: int, energy: Decimal,
            raw: dict[Tier, Decimal], starts: list[int]) -> None:
    """Add ``energy`` flowing over ``[lo, hi)`` to the tiers, in proportion to time."""
    first = max(bisect.bisect_right(starts, lo) - 1, 0)
    span = hi - lo
    shares: list[tuple[Tier, Decimal]] = []
    for segment in segments[first:]:
        if segment.start_ms >= hi:
            break
        overlap = min(hi, segment.end_ms) - max(lo, segment.start_ms)
        if overlap > 0:
            shares.append((segment.tier, energy * overlap / span))
    if not shares:  # pragma: no cover - lo/hi lie within the session's segments
        raise SettlementError(f"interval [{lo}, {hi}) is outside the session")
    # the last share takes what the divisions left, so each interval is conserved exactly
    given = sum((s for _, s in shares[:-1]), ZERO)
    shares[-1] = (shares[-1][0], energy - given)
    for tier, share in shares:
        raw[tier] = raw.get(tier, ZERO) + share


def allocate(raw: Mapping[Tier, Decimal]) -> tuple[Decimal, dict[Tier, Decimal]]:
    """Round exact tier energies: total half-up, parts by largest remainder (sum = total)."""
    total = q_kwh(sum(raw.values(), ZERO))
    floors = {t: e.quantize(KWH, rounding=ROUND_FLOOR) for t, e in raw.items()}
    missing = int((total - sum(floors.values(), ZERO)) / KWH)
    order = sorted(floors, key=lambda t: (-(raw[t] - floors[t]), TIER_ORDER.index(t)))
    for tier in order[:missing]:
        floors[tier] += KWH
    return total, floors


def settle(tariff: Tariff, samples: Iterable[tuple[int, Any]], *, started_ms: int,
           ended_ms: int, meter_start: Any = None, meter_stop: Any = None,
           limits: MeterLimits | None = None) -> Settlement:
    """Settle one session (see the module documentation for the algorithm and rounding).

    ``samples`` are ``(ts_ms, cumulative meter kWh)``; readings may be Decimal, int or str (a
    float goes through its repr). ``limits`` bounds plausible power (default 600 kW).
    """
    for name, value in (("started_ms", started_ms), ("ended_ms", ended_ms)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettlementError(f"{name} must be int ms since the epoch, got {value!r}")
    if ended_ms < started_ms:
        raise SettlementError(f"the session ends ({ended_ms}) before it starts ({started_ms})")
    limit_kw = (limits or MeterLimits()).limit_kw
    anomalies: list[Anomaly] = []
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        readings = _readings(samples, started_ms, ended_ms, meter_start, meter_stop, anomalies)
        intervals = _accepted_intervals(readings, limit_kw, anomalies)
        raw: dict[Tier, Decimal] = dict.fromkeys(tariff.tiers_used, ZERO)
        segments = tariff.segments(started_ms, ended_ms)
        starts = [s.start_ms for s in segments]
        used_samples = False
        for ref, reading in intervals:
            energy = reading.kwh - ref.kwh
            used_samples = used_samples or "sample" in (ref.source, reading.source)
            if energy == 0:
                continue
            _spread(segments, ref.ts, reading.ts, energy, raw, starts)
        total, energies = allocate(raw)
    if not intervals:
        method = "none"
        if len(readings) < 2:
            anomalies.append(Anomaly(
                "no_meter_data", started_ms,
                f"{len(readings)} usable reading(s): nothing can be billed"))
    else:
        method = "samples" if used_samples else "meter"
    lines = []
    for tier in TIER_ORDER:
        if tier not in energies:
            continue
        rate = tariff.rate(tier)
        energy = energies[tier]
        lines.append(TierLine(tier, energy, rate.electricity, rate.service,
                              q_cny(energy * rate.electricity), q_cny(energy * rate.service)))
    electricity = sum((line.electricity_amount for line in lines), ZERO)
    service = sum((line.service_amount for line in lines), ZERO)
    return Settlement(
        started_ms=started_ms, ended_ms=ended_ms, method=method, tiers=tuple(lines),
        energy=total, electricity_amount=electricity, service_amount=service,
        amount=electricity + service, anomalies=tuple(anomalies),
        meter_start=intervals[0][0].kwh if intervals else None,
        meter_stop=intervals[-1][1].kwh if intervals else None,
    )
