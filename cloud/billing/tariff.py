"""Time-of-use tariffs (尖峰平谷): tiers, a day map, a time zone, and the version in force.

A tariff prices energy in up to five tiers -- tip 尖, peak 峰, flat 平, valley 谷, deep valley
深谷 -- each with an electricity rate and a service-fee rate in CNY/kWh (Decimal, at most 5
decimals, as YKC carries them). A day map assigns a tier to every minute of the local day, given
either as the 48 half-hour slots of a YKC billing model or as periods ``"HH:MM"``-``"HH:MM"``
(minute resolution; an end of ``"24:00"`` or ``"00:00"`` means midnight; a period whose end is
before its start wraps past midnight). The periods must cover the day exactly: a gap or an
overlap is refused with a :class:`~cloud.billing.errors.TariffError` naming the minutes.

Document (what :meth:`Tariff.from_doc` reads and :meth:`Tariff.to_doc` writes; unknown keys are
refused)::

    {"tiers": {"peak":   {"energy": "1.00000", "service": "0.60000"},   # energy = electricity
               "flat":   {"energy": "0.70000", "service": "0.60000"},
               "valley": {"energy": "0.30000", "service": "0.60000"}},
     "periods": [{"start": "23:00", "end": "07:00", "tier": "valley"},
                 {"start": "07:00", "end": "18:00", "tier": "flat"},
                 {"start": "18:00", "end": "23:00", "tier": "peak"}],   # or "slots": [48 names]
     "tz": "Asia/Shanghai",                                             # optional (default)
     "effective_from": 1735660800000,                                   # optional, ms
     "name": "winter 2025"}                                             # optional

A session is billed with the tariff version in force when it *started* (the catalogue's
``tariff_at(station, started_ms)``), as a YKC charger keeps the model it had at the start.

:func:`edge_doc` turns a tariff into the ``tariff`` document of the gateway's desired state, the
input of ``bridges.ykc.mapper.billing_model_from_doc``. A YKC model has four tiers and half-hour
slots, so:

* a tariff using all five tiers is refused (:class:`EdgeTariffError`); ``deep_valley`` without
  ``valley`` takes YKC's valley slot (index 3), both together are refused;
* a boundary that is not on a half hour is refused by default (``rounding="refuse"``); with
  ``rounding="majority"`` each half hour gets the tier covering most of its 30 minutes (15/15: the
  tier in force at the start of the half hour). The platform always settles with the exact
  minute periods, so a rounded model makes the charger's own record differ from the settlement
  around those boundaries -- reconciliation reports it.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cloud.billing.errors import EdgeTariffError, TariffError
from cloud.billing.money import MAX_RATE, ZERO, decimals, q_rate, to_decimal

DEFAULT_TZ = "Asia/Shanghai"
DAY_MINUTES = 24 * 60
SLOTS_PER_DAY = 48
SLOT_MINUTES = 30


class Tier(StrEnum):
    """Price tiers, from the most to the least expensive by convention."""

    TIP = "tip"  # 尖
    PEAK = "peak"  # 峰
    FLAT = "flat"  # 平
    VALLEY = "valley"  # 谷
    DEEP_VALLEY = "deep_valley"  # 深谷


TIER_ORDER: tuple[Tier, ...] = tuple(Tier)
TIER_CN: dict[Tier, str] = {Tier.TIP: "尖", Tier.PEAK: "峰", Tier.FLAT: "平", Tier.VALLEY: "谷",
                            Tier.DEEP_VALLEY: "深谷"}
#: YKC billing-model tier positions (0 tip, 1 peak, 2 flat, 3 valley)
YKC_TIERS: tuple[str, ...] = ("tip", "peak", "flat", "valley")


@dataclass(frozen=True, slots=True)
class TierRate:
    """Electricity and service-fee rate of one tier, CNY/kWh."""

    electricity: Decimal
    service: Decimal

    @property
    def total(self) -> Decimal:
        """Combined unit price (what YKC reports per tier in a transaction record)."""
        return self.electricity + self.service


@dataclass(frozen=True, slots=True)
class Period:
    """Local minutes ``[start, end)`` of the day (0..1440) billed at ``tier``."""

    start: int
    end: int
    tier: Tier


class Segment(NamedTuple):
    """A stretch of a session at one tier: ``[start_ms, end_ms)``."""

    start_ms: int
    end_ms: int
    tier: Tier


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _parse_clock(value: object, where: str, *, end: bool) -> int:
    if not isinstance(value, str):
        raise TariffError(f"{where}: expected \"HH:MM\", got {value!r}")
    hours, sep, minutes = value.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2 \
            or len(hours) > 2:
        raise TariffError(f"{where}: expected \"HH:MM\", got {value!r}")
    h, m = int(hours), int(minutes)
    if m > 59 or h > 24 or (h == 24 and m):
        raise TariffError(f"{where}: {value!r} is not a time of day")
    total = h * 60 + m
    if total == DAY_MINUTES and not end:
        raise TariffError(f"{where}: a period cannot start at 24:00")
    if end and total == 0:
        total = DAY_MINUTES  # "00:00" as an end means midnight
    return total


def _tier(value: object, where: str) -> Tier:
    try:
        return Tier(str(value))
    except ValueError:
        raise TariffError(
            f"{where}: unknown tier {value!r} (one of {', '.join(TIER_ORDER)})") from None


def _rate(value: object, where: str) -> Decimal:
    try:
        rate = to_decimal(value, where)
    except ValueError as exc:
        raise TariffError(str(exc)) from None
    if rate < 0:
        raise TariffError(f"{where}: a rate cannot be negative ({rate})")
    if decimals(rate) > 5:
        raise TariffError(f"{where}: {rate} has more than 5 decimals (YKC carries 0.00001 CNY)")
    if rate > MAX_RATE:
        raise TariffError(f"{where}: {rate} is above the largest rate YKC carries ({MAX_RATE})")
    return rate


def _check_keys(doc: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise TariffError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))} "
                          f"(allowed: {', '.join(sorted(allowed))})")


def _zone(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise TariffError(f"tz: expected an IANA time zone name, got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TariffError(f"tz: unknown time zone {name!r}") from None


def periods_from_day_map(minute_tiers: list[Tier | None]) -> tuple[Period, ...]:
    """Merge a per-minute day map into sorted, contiguous periods (every minute must be set)."""
    out: list[Period] = []
    start = 0
    for minute in range(1, DAY_MINUTES + 1):
        if minute == DAY_MINUTES or minute_tiers[minute] != minute_tiers[start]:
            tier = minute_tiers[start]
            assert tier is not None
            out.append(Period(start, minute, tier))
            start = minute
    return tuple(out)


def _normalise(periods: list[tuple[int, int, Tier]], where: str) -> tuple[Period, ...]:
    """Check ``(start, end, tier)`` periods (end may wrap) cover the day once; merge them."""
    minutes: list[Tier | None] = [None] * DAY_MINUTES
    owner: list[int] = [-1] * DAY_MINUTES
    for index, (start, end, tier) in enumerate(periods):
        if start == end:
            raise TariffError(f"{where}[{index}]: period {_clock(start)}-{_clock(end)} is empty")
        spans = [(start, end)] if start < end else [(start, DAY_MINUTES), (0, end)]
        for lo, hi in spans:
            for minute in range(lo, hi):
                if owner[minute] >= 0:
                    other = owner[minute]
                    clash_end = minute
                    while clash_end < hi and owner[clash_end] == other:
                        clash_end += 1
                    raise TariffError(
                        f"{where}: periods {other} and {index} overlap at "
                        f"{_clock(minute)}-{_clock(clash_end)}")
                owner[minute] = index
                minutes[minute] = tier
    for minute in range(DAY_MINUTES):
        if minutes[minute] is None:
            gap_end = minute
            while gap_end < DAY_MINUTES and minutes[gap_end] is None:
                gap_end += 1
            raise TariffError(
                f"{where}: no tier for {_clock(minute)}-{_clock(gap_end)} "
                "(the periods must cover the whole day)")
    return periods_from_day_map(minutes)


@dataclass(frozen=True)
class Tariff:
    """A validated time-of-use tariff (see the module documentation)."""

    rates: Mapping[Tier, TierRate]
    periods: tuple[Period, ...]
    tz: str = DEFAULT_TZ
    effective_from_ms: int | None = None
    name: str = ""
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        zone = _zone(self.tz)
        del zone
        minutes: list[Tier | None] = [None] * DAY_MINUTES
        expected = 0
        for period in self.periods:
            if period.start != expected or not period.start < period.end <= DAY_MINUTES:
                raise TariffError(
                    "periods must be sorted, contiguous and cover 00:00-24:00 "
                    f"(at {_clock(expected)} found {_clock(period.start)}-{_clock(period.end)})")
            for minute in range(period.start, period.end):
                minutes[minute] = period.tier
            expected = period.end
        if expected != DAY_MINUTES:
            raise TariffError(f"no tier for {_clock(expected)}-24:00")
        # canonical form: adjacent periods of one tier merged
        object.__setattr__(self, "periods", periods_from_day_map(minutes))
        object.__setattr__(self, "_starts", tuple(p.start for p in self.periods))
        rates = {Tier(k): v for k, v in self.rates.items()}
        for tier in self.tiers_used:
            if tier not in rates:
                raise TariffError(f"tiers: the day map uses {tier.value!r} but it has no rates")
        for tier, rate in rates.items():
            _rate(rate.electricity, f"tiers.{tier.value}.energy")
            _rate(rate.service, f"tiers.{tier.value}.service")
        object.__setattr__(self, "rates",
                           {t: rates[t] for t in TIER_ORDER if t in rates})
        if self.effective_from_ms is not None and (
                isinstance(self.effective_from_ms, bool)
                or not isinstance(self.effective_from_ms, int) or self.effective_from_ms < 0):
            raise TariffError(
                f"effective_from: expected ms since the epoch, got {self.effective_from_ms!r}")

    # -- documents ----------------------------------------------------------------------------

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Tariff:
        """Parse and validate a tariff document (see the module documentation)."""
        if not isinstance(doc, Mapping):
            raise TariffError(f"a tariff document is a mapping, got {type(doc).__name__}")
        _check_keys(doc, {"tiers", "slots", "periods", "tz", "effective_from", "name"}, "tariff")
        tiers = doc.get("tiers")
        if not isinstance(tiers, Mapping) or not tiers:
            raise TariffError("tiers: expected a mapping of tier name -> {energy, service}")
        rates: dict[Tier, TierRate] = {}
        for key, value in tiers.items():
            tier = _tier(key, "tiers")
            where = f"tiers.{tier.value}"
            if not isinstance(value, Mapping):
                raise TariffError(f"{where}: expected {{energy, service}}, got {value!r}")
            _check_keys(value, {"energy", "service"}, where)
            if "energy" not in value or "service" not in value:
                raise TariffError(f"{where}: needs both 'energy' (electricity) and 'service'")
            rates[tier] = TierRate(_rate(value["energy"], f"{where}.energy"),
                                   _rate(value["service"], f"{where}.service"))
        has_slots, has_periods = "slots" in doc, "periods" in doc
        if has_slots == has_periods:
            raise TariffError("give the day map as exactly one of 'slots' (48 tier names) "
                              "or 'periods' ([{start, end, tier}])")
        raw: list[tuple[int, int, Tier]] = []
        if has_slots:
            slots = doc["slots"]
            if not isinstance(slots, list | tuple) or len(slots) != SLOTS_PER_DAY:
                raise TariffError(f"slots: expected {SLOTS_PER_DAY} tier names (one per half "
                                  f"hour from 00:00), got {slots!r:.80}")
            for index, name in enumerate(slots):
                start = index * SLOT_MINUTES
                raw.append((start, start + SLOT_MINUTES, _tier(name, f"slots[{index}]")))
            where = "slots"
        else:
            items = doc["periods"]
            if not isinstance(items, list | tuple) or not items:
                raise TariffError("periods: expected a non-empty list of {start, end, tier}")
            for index, item in enumerate(items):
                at = f"periods[{index}]"
                if not isinstance(item, Mapping):
                    raise TariffError(f"{at}: expected {{start, end, tier}}, got {item!r}")
                _check_keys(item, {"start", "end", "tier"}, at)
                for key in ("start", "end", "tier"):
                    if key not in item:
                        raise TariffError(f"{at}: missing {key!r}")
                raw.append((_parse_clock(item["start"], f"{at}.start", end=False),
                            _parse_clock(item["end"], f"{at}.end", end=True),
                            _tier(item["tier"], f"{at}.tier")))
            where = "periods"
        periods = _normalise(raw, where)
        tz = doc.get("tz", DEFAULT_TZ)
        _zone(tz)
        effective = doc.get("effective_from")
        if effective is not None and (isinstance(effective, bool) or not isinstance(effective, int)
                                      or effective < 0):
            raise TariffError(f"effective_from: expected ms since the epoch, got {effective!r}")
        name = doc.get("name", "")
        if not isinstance(name, str) or len(name) > 200:
            raise TariffError("name: expected a string of at most 200 characters")
        return cls(rates=rates, periods=periods, tz=tz, effective_from_ms=effective, name=name)

    def to_doc(self) -> dict[str, Any]:
        """The canonical document (periods form, rates with 5 decimals as strings)."""
        doc: dict[str, Any] = {
            "tiers": {t.value: {"energy": str(q_rate(r.electricity)),
                                "service": str(q_rate(r.service))}
                      for t, r in self.rates.items()},
            "periods": [{"start": _clock(p.start), "end": _clock(p.end), "tier": p.tier.value}
                        for p in self.periods],
            "tz": self.tz,
        }
        if self.effective_from_ms is not None:
            doc["effective_from"] = self.effective_from_ms
        if self.name:
            doc["name"] = self.name
        return doc

    # -- queries ------------------------------------------------------------------------------

    @cached_property
    def zone(self) -> ZoneInfo:
        """The tariff's time zone."""
        return ZoneInfo(self.tz)

    @cached_property
    def tiers_used(self) -> tuple[Tier, ...]:
        """Tiers the day map uses, in tier order."""
        used = {p.tier for p in self.periods}
        return tuple(t for t in TIER_ORDER if t in used)

    @property
    def half_hour_aligned(self) -> bool:
        """Whether every boundary is on a half hour (a YKC model expresses it exactly)."""
        return all(p.start % SLOT_MINUTES == 0 for p in self.periods)

    def rate(self, tier: Tier | str) -> TierRate:
        """The rates of ``tier`` (KeyError when the tariff has none)."""
        return self.rates[Tier(tier)]

    def tier_at_minute(self, minute: int) -> Tier:
        """The tier of local minute ``minute`` (0..1439) of the day."""
        if not 0 <= minute < DAY_MINUTES:
            raise ValueError(f"minute of the day must be 0..1439, got {minute}")
        return self.periods[bisect.bisect_right(self._starts, minute) - 1].tier

    def tier_at(self, when: time | datetime) -> Tier:
        """The tier at a local wall-clock time (an aware datetime is converted to the zone)."""
        if isinstance(when, datetime):
            if when.tzinfo is not None:
                when = when.astimezone(self.zone)
            when = when.time()
        return self.tier_at_minute(when.hour * 60 + when.minute)

    def tier_at_ms(self, ms: int) -> Tier:
        """The tier in force at an instant (ms since the epoch)."""
        local = datetime.fromtimestamp(ms // 1000, self.zone)
        return self.tier_at_minute(local.hour * 60 + local.minute)

    def _local_date(self, ms: int) -> date:
        return datetime.fromtimestamp(ms // 1000, self.zone).date()

    def _offset_changes(self, start_ms: int, end_ms: int) -> list[int]:
        """Instants (ms, whole seconds) where the zone's UTC offset changes in the range."""
        zone = self.zone

        def offset(ms: int) -> timedelta | None:
            return datetime.fromtimestamp(ms // 1000, zone).utcoffset()

        out = []
        step = 6 * 3_600_000  # offsets never change twice within six hours
        lo = start_ms
        while lo < end_ms:
            hi = min(lo + step, end_ms)
            if offset(lo) != offset(hi):
                a, b = lo // 1000, hi // 1000  # offset(a) != offset(b): find the first b
                while b - a > 1:
                    mid = (a + b) // 2
                    if offset(mid * 1000) == offset(a * 1000):
                        a = mid
                    else:
                        b = mid
                out.append(b * 1000)
            lo = hi
        return out

    def segments(self, start_ms: int, end_ms: int) -> list[Segment]:
        """Split ``[start_ms, end_ms)`` where the tier changes and at every local midnight.

        Segments are contiguous, in order, and never span a local midnight (each belongs to
        one local day). Daylight-saving jumps are followed (the tier is that of the local wall
        time). An empty range gives no segments.
        """
        if end_ms < start_ms:
            raise ValueError(f"end {end_ms} is before start {start_ms}")
        if end_ms == start_ms:
            return []
        zone = self.zone
        cuts: set[int] = set()
        day = self._local_date(start_ms) - timedelta(days=1)
        last_day = self._local_date(end_ms) + timedelta(days=1)
        while day <= last_day:
            for start in self._starts:
                clock = time(start // 60, start % 60)
                for fold in (0, 1):
                    instant = datetime.combine(day, clock, tzinfo=zone).replace(fold=fold)
                    ms = int(instant.timestamp()) * 1000
                    if start_ms < ms < end_ms:
                        cuts.add(ms)
            day += timedelta(days=1)
        cuts.update(t for t in self._offset_changes(start_ms, end_ms) if start_ms < t < end_ms)
        bounds = [start_ms, *sorted(cuts), end_ms]
        out: list[Segment] = []
        for lo, hi in itertools.pairwise(bounds):
            tier = self.tier_at_ms(lo)
            if out and out[-1].tier == tier and \
                    self._local_date(out[-1].start_ms) == self._local_date(lo):
                out[-1] = Segment(out[-1].start_ms, hi, tier)
            else:
                out.append(Segment(lo, hi, tier))
        return out

    def slot_tiers(self, rounding: Literal["refuse", "majority"] = "refuse") -> tuple[Tier, ...]:
        """The 48 half-hour tiers of the day (see the module documentation on rounding)."""
        out = []
        for slot in range(SLOTS_PER_DAY):
            lo = slot * SLOT_MINUTES
            hi = lo + SLOT_MINUTES
            share: dict[Tier, int] = {}
            for period in self.periods:
                overlap = min(hi, period.end) - max(lo, period.start)
                if overlap > 0:
                    share[period.tier] = share.get(period.tier, 0) + overlap
            if len(share) > 1 and rounding == "refuse":
                inside = [p for p in self.periods if lo < p.start < hi]
                raise EdgeTariffError(
                    f"the boundary at {_clock(inside[0].start)} is not on a half hour, which a "
                    "YKC billing model (48 half-hour slots) cannot express; move it or allow "
                    "rounding='majority'")
            first = self.tier_at_minute(lo)
            out.append(max(share, key=lambda t: (share[t], t == first)))
        return tuple(out)


def ykc_positions(tariff: Tariff) -> tuple[Tier, Tier, Tier, Tier]:
    """Which of our tiers sits in each YKC model position (tip, peak, flat, valley).

    ``deep_valley`` takes the valley position when ``valley`` is unused; a tariff that uses
    both, or all five tiers, has no YKC form (:class:`EdgeTariffError`).
    """
    used = set(tariff.tiers_used)
    if Tier.DEEP_VALLEY in used:
        if Tier.VALLEY in used:
            raise EdgeTariffError(
                "a YKC billing model has 4 tiers (tip, peak, flat, valley): this tariff uses "
                "both valley and deep_valley")
        return (Tier.TIP, Tier.PEAK, Tier.FLAT, Tier.DEEP_VALLEY)
    return (Tier.TIP, Tier.PEAK, Tier.FLAT, Tier.VALLEY)


def edge_doc(tariff: Tariff, version: int, *, code: int | None = None,
             rounding: Literal["refuse", "majority"] = "refuse") -> dict[str, Any]:
    """The gateway desired-state ``tariff`` document (``billing_model_from_doc`` input).

    ``version`` is the tariff version; the YKC model code is ``code`` (0..9999) or
    ``version % 10000``: every change of tariff needs a new code, because a YKC charger compares
    only codes. All four YKC positions get rates (an unused position repeats the rates of the
    first used tier; no slot refers to it).
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise EdgeTariffError(f"version must be a non-negative int, got {version!r}")
    model_code = version % 10000 if code is None else code
    if isinstance(model_code, bool) or not isinstance(model_code, int) \
            or not 0 <= model_code <= 9999:
        raise EdgeTariffError(f"YKC model code must be 0..9999, got {code!r}")
    positions = ykc_positions(tariff)
    slots = tariff.slot_tiers(rounding)
    filler = tariff.rate(tariff.tiers_used[0])
    tiers: dict[str, dict[str, str]] = {}
    for tier in positions:
        rate = tariff.rates.get(tier, filler)
        tiers[tier.value] = {"energy": str(q_rate(rate.electricity)),
                             "service": str(q_rate(rate.service))}
    return {"version": version, "code": f"{model_code:04d}", "tiers": tiers,
            "slots": [t.value for t in slots]}


def flat_tariff(electricity: Decimal | str, service: Decimal | str = ZERO, *,
                tz: str = DEFAULT_TZ, name: str = "") -> Tariff:
    """One flat price all day (a convenience for stations without time-of-use)."""
    return Tariff(rates={Tier.FLAT: TierRate(to_decimal(electricity, "electricity"),
                                             to_decimal(service, "service"))},
                  periods=(Period(0, DAY_MINUTES, Tier.FLAT),), tz=tz, name=name)
