"""Settlement: hand-worked bills, meter sanity, fallbacks, and properties of the rounding rule."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cloud.billing import (
    BillingConfig,
    MeterLimits,
    Settlement,
    SettlementError,
    Tariff,
    Tier,
    flat_tariff,
    settle,
)
from cloud.billing.money import q_cny, q_kwh
from cloud.billing.tariff import Period, TierRate
from tests.cloud.billing.helpers import ms, tariff

D = Decimal


def _energies(s: Settlement) -> dict[str, Decimal]:
    return {line.tier.value: line.energy for line in s.tiers}


def test_session_across_tier_boundaries_and_midnight_worked_by_hand() -> None:
    """2025-03-01 20:30 -> 03-02 00:30 (Asia/Shanghai) on the worked-example tariff.

    Tiers in force: peak until 21:00, flat 21:00-23:00, valley from 23:00 (across midnight).
    Rates (electricity + service): peak 1.0 + 0.6, flat 0.7 + 0.6, valley 0.3 + 0.6.
    """
    t = tariff()
    samples = [
        (ms(2025, 3, 1, 20, 45), "1010.0000"),  # 20:30-20:45  10 kWh, all peak
        (ms(2025, 3, 1, 21, 15), "1025.0000"),  # 20:45-21:15  15 kWh: 15 min peak 7.5,
        #                                                        15 min flat 7.5
        (ms(2025, 3, 1, 22, 50), "1060.0000"),  # 21:15-22:50  35 kWh, all flat
        (ms(2025, 3, 1, 23, 10), "1067.0001"),  # 22:50-23:10  7.0001: 10 min flat 3.50005,
        #                                                        10 min valley 3.50005
        (ms(2025, 3, 2, 0, 20), "1088.0000"),   # 23:10-00:20  20.9999 valley (over midnight)
    ]
    s = settle(t, samples, started_ms=ms(2025, 3, 1, 20, 30), ended_ms=ms(2025, 3, 2, 0, 30),
               meter_start="1000.0000", meter_stop="1091.3333")  # 00:20-00:30 3.3333 valley
    # exact:  peak 10 + 7.5 = 17.5
    #         flat 7.5 + 35 + 3.50005 = 46.00005
    #         valley 3.50005 + 20.9999 + 3.3333 = 27.83325
    #         total 91.3333
    # rounding: floors 17.5000 + 46.0000 + 27.8332 = 91.3332, one 0.0001 short of the total;
    #           flat and valley both have remainder 0.00005: the tie goes to the earlier tier
    #           (flat) -> flat 46.0001, valley 27.8332
    assert s.method == "samples"
    assert s.anomalies == ()
    assert _energies(s) == {"tip": D("0.0000"), "peak": D("17.5000"), "flat": D("46.0001"),
                            "valley": D("27.8332")}
    assert s.energy == D("91.3333")
    # amounts, each rounded half up to 0.01:
    #   peak   17.5    x 1.0 = 17.50      x 0.6 = 10.50
    #   flat   46.0001 x 0.7 = 32.20007 -> 32.20    x 0.6 = 27.60006 -> 27.60
    #   valley 27.8332 x 0.3 = 8.34996  -> 8.35     x 0.6 = 16.69992 -> 16.70
    line = s.tier(Tier.VALLEY)
    assert line is not None
    assert (line.electricity_amount, line.service_amount) == (D("8.35"), D("16.70"))
    assert s.electricity_amount == D("17.50") + D("32.20") + D("8.35") == D("58.05")
    assert s.service_amount == D("10.50") + D("27.60") + D("16.70") == D("54.80")
    assert s.amount == D("112.85")
    assert (s.meter_start, s.meter_stop) == (D("1000.0000"), D("1091.3333"))


def test_without_samples_the_meter_delta_is_spread_by_time_share() -> None:
    # 22:00 -> 01:00: one hour flat (21-23), two hours valley; 30 kWh at constant power
    s = settle(tariff(), [], started_ms=ms(2025, 3, 1, 22), ended_ms=ms(2025, 3, 2, 1),
               meter_start=D("500"), meter_stop=D("530"))
    assert s.method == "meter"
    assert _energies(s)["flat"] == D("10.0000")  # 1/3 of 30
    assert _energies(s)["valley"] == D("20.0000")  # 2/3 of 30
    assert s.amount == D("7.00") + D("6.00") + D("6.00") + D("12.00")


def test_half_up_rounding_per_part_and_total_as_sum_of_parts() -> None:
    # 0.0100 kWh at 0.5 + 0.5: each part 0.005 -> 0.01 (half up; half-even would give 0.00);
    # the total is the sum of the rounded parts, 0.02 (not round(0.01 x 1.0) = 0.01)
    s = settle(flat_tariff("0.5", "0.5"), [], started_ms=0, ended_ms=60_000,
               meter_start="7", meter_stop="7.0100")
    assert (s.electricity_amount, s.service_amount, s.amount) == (D("0.01"), D("0.01"),
                                                                   D("0.02"))


def test_zero_energy_and_no_data() -> None:
    t = tariff()
    s = settle(t, [], started_ms=ms(2025, 3, 1, 9), ended_ms=ms(2025, 3, 1, 10),
               meter_start="5", meter_stop="5")
    assert s.energy == D("0.0000") and s.amount == D("0.00") and s.method == "meter"
    s = settle(t, [], started_ms=ms(2025, 3, 1, 9), ended_ms=ms(2025, 3, 1, 10))
    assert s.method == "none" and s.energy == 0
    assert [a.kind for a in s.anomalies] == ["no_meter_data"]
    s = settle(t, [(ms(2025, 3, 1, 9, 30), "4")], started_ms=ms(2025, 3, 1, 9),
               ended_ms=ms(2025, 3, 1, 10))
    assert s.method == "none" and [a.kind for a in s.anomalies] == ["no_meter_data"]


def test_a_decreasing_glitch_is_dropped_and_loses_no_energy() -> None:
    start = ms(2025, 3, 1, 13)
    samples = [(start + 60_000 * i, value) for i, value in
               enumerate(["100.0", "100.5", "101.0", "50.0", "102.0", "102.5"])]
    s = settle(flat_tariff("1", "0"), samples, started_ms=start, ended_ms=start + 300_000)
    assert s.energy == D("2.5000")  # 100.0 -> 102.5, the 50.0 reading ignored
    assert [(a.kind, a.ts_ms) for a in s.anomalies] == [("meter_decreased", start + 180_000)]
    assert s.anomalies[0].energy == 0


def test_a_spike_is_dropped_and_not_billed() -> None:
    start = ms(2025, 3, 1, 13)
    samples = [(start, "100.0"), (start + 60_000, "100.5"), (start + 120_000, "900.0"),
               (start + 180_000, "101.5")]
    s = settle(flat_tariff("1", "0"), samples, started_ms=start, ended_ms=start + 180_000)
    assert s.energy == D("1.5000")
    assert [a.kind for a in s.anomalies] == ["implausible_power"]


def test_a_bogus_meter_start_becomes_a_reported_jump() -> None:
    # a charger that had no reading sends meterStart 0 (the CitrineOS #1060 failure: billing
    # 910 kWh for a short session): the samples agree among themselves, so the 0 is the outlier
    start = ms(2025, 3, 1, 13)
    samples = [(start + 60_000, "910.0000"), (start + 120_000, "910.5000"),
               (start + 180_000, "911.0000")]
    s = settle(flat_tariff("1", "0"), samples, started_ms=start, ended_ms=start + 240_000,
               meter_start="0", meter_stop="911.4000")
    assert s.energy == D("1.4000")
    assert [(a.kind, a.energy) for a in s.anomalies] == [("meter_jump", D("910.0000"))]
    assert s.meter_start == D("910.0000")


def test_a_meter_reset_is_followed() -> None:
    start = ms(2025, 3, 1, 13)
    samples = [(start, "5000.0"), (start + 60_000, "5000.5"), (start + 120_000, "0.2"),
               (start + 180_000, "0.7")]
    s = settle(flat_tariff("1", "0"), samples, started_ms=start, ended_ms=start + 180_000)
    assert s.energy == D("1.0000")  # 0.5 before, 0.5 after the reset
    assert [a.kind for a in s.anomalies] == ["meter_reset"]


def test_power_limit_follows_the_rating() -> None:
    start = ms(2025, 3, 1, 13)
    # 2 kWh in 60 s = 120 kW: plausible for a 120 kW DC charger, not for a 7 kW AC one
    samples = [(start, "10"), (start + 60_000, "12"), (start + 120_000, "12.1")]
    t = flat_tariff("1", "0")
    dc = settle(t, samples, started_ms=start, ended_ms=start + 120_000,
                limits=BillingConfig().limits(D(120)))
    assert dc.energy == D("2.1000") and dc.anomalies == ()
    ac = settle(t, samples, started_ms=start, ended_ms=start + 120_000,
                limits=MeterLimits(rated_kw=D(7)))
    # 10 -> 12 is above 1.2 x 7 kW; 12 -> 12.1 (6 kW) is fine but 10 -> 12.1 is not: the
    # readings after the jump agree, so 12 becomes the reference and 2 kWh are not billed
    assert [(a.kind, a.energy) for a in ac.anomalies] == [("meter_jump", D("2"))]
    assert ac.energy == D("0.1000")
    assert MeterLimits(rated_kw=D(1000)).limit_kw == D(600)


def test_samples_outside_the_session_are_counted_at_its_ends() -> None:
    start = ms(2025, 3, 1, 13)
    s = settle(flat_tariff("1", "0"), [(start - 5_000, "1"), (start + 60_000, "2"),
                                       (start + 125_000, "3")],
               started_ms=start, ended_ms=start + 120_000)
    assert s.energy == D("2.0000")
    assert [a.kind for a in s.anomalies] == ["outside_session", "outside_session"]


def test_bad_input_is_refused_or_reported() -> None:
    t = flat_tariff("1", "0")
    with pytest.raises(SettlementError, match="before it starts"):
        settle(t, [], started_ms=10, ended_ms=5)
    with pytest.raises(SettlementError, match="int ms"):
        settle(t, [(1.5, "1")], started_ms=0, ended_ms=5)  # type: ignore[list-item]
    with pytest.raises(SettlementError, match="a sample is"):
        settle(t, [(1,)], started_ms=0, ended_ms=5)  # type: ignore[list-item]
    s = settle(t, [(1000, "abc"), (2000, "-1")], started_ms=0, ended_ms=3000,
               meter_start="1", meter_stop="1.0001")
    assert [a.kind for a in s.anomalies] == ["bad_reading", "bad_reading"]
    assert s.energy == D("0.0001")


def test_settlement_document_round_trip() -> None:
    s = settle(tariff(), [(ms(2025, 3, 1, 10, 30), "3")], started_ms=ms(2025, 3, 1, 9, 45),
               ended_ms=ms(2025, 3, 1, 11, 15), meter_start="1", meter_stop="5")
    doc = s.to_doc()
    assert doc["amount"] == str(s.amount)
    assert Settlement.from_doc(doc) == s


# -- properties -----------------------------------------------------------------------------


@st.composite
def tariffs(draw: st.DrawFn) -> Tariff:
    cuts = sorted(draw(st.sets(st.integers(1, 1439), max_size=5)))
    bounds = [0, *cuts, 1440]
    periods = [Period(lo, hi, draw(st.sampled_from(list(Tier))))
               for lo, hi in itertools.pairwise(bounds)]
    rate = st.decimals(min_value=0, max_value=3, places=5, allow_nan=False,
                       allow_infinity=False)
    return Tariff(rates={p.tier: TierRate(draw(rate), draw(rate)) for p in periods},
                  periods=tuple(periods),
                  tz=draw(st.sampled_from(["Asia/Shanghai", "Europe/Berlin", "UTC"])))


@st.composite
def sessions(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible session: increasing readings at <= 300 kW, 0.0001 kWh resolution."""
    start = draw(st.integers(1_700_000_000_000, 1_800_000_000_000))
    gaps = draw(st.lists(st.integers(1_000, 3_600_000), min_size=0, max_size=25))
    times = [start]
    for gap in gaps:
        times.append(times[-1] + gap)
    end = times[-1] + draw(st.integers(0, 3_600_000))
    reading = draw(st.decimals(min_value=0, max_value=100_000, places=4, allow_nan=False,
                               allow_infinity=False))
    readings = [reading]
    for prev, now in itertools.pairwise(times):
        most = D(300) * (now - prev) / D(3_600_000)  # kWh at 300 kW
        step = draw(st.integers(0, int(most * 10_000)))
        readings.append(readings[-1] + D(step) / 10_000)
    stop = readings[-1] + D(draw(st.integers(0, int((end - times[-1]) * 300 / 360)))) / 10_000
    return {"started_ms": start, "ended_ms": end, "meter_start": readings[0],
            "meter_stop": stop, "samples": list(zip(times[1:], readings[1:], strict=True))}


@settings(max_examples=200, deadline=None)
@given(t=tariffs(), session=sessions())
def test_parts_always_add_up_to_the_totals(t: Tariff, session: dict[str, Any]) -> None:
    s = settle(t, session["samples"], started_ms=session["started_ms"],
               ended_ms=session["ended_ms"], meter_start=session["meter_start"],
               meter_stop=session["meter_stop"])
    assert s.anomalies == ()
    assert sum(line.energy for line in s.tiers) == s.energy
    assert sum(line.electricity_amount for line in s.tiers) == s.electricity_amount
    assert sum(line.service_amount for line in s.tiers) == s.service_amount
    assert s.electricity_amount + s.service_amount == s.amount
    for line in s.tiers:
        assert line.electricity_amount == q_cny(line.energy * line.electricity_rate)
        assert line.service_amount == q_cny(line.energy * line.service_rate)
        assert line.energy >= 0 and line.energy == q_kwh(line.energy)
    # energy is conserved: the bill has exactly the meter's delta
    assert s.energy == q_kwh(session["meter_stop"] - session["meter_start"])


def _interpolate(samples: list[tuple[int, Decimal]], start: tuple[int, Decimal],
                 fractions: list[float]) -> list[tuple[int, Decimal]]:
    """Extra readings on the straight line between consecutive readings."""
    out = []
    points = [start, *samples]
    for (t0, e0), (t1, e1), frac in zip(points, points[1:], fractions, strict=False):
        ts = t0 + int((t1 - t0) * frac)
        if t0 < ts < t1:
            out.append((ts, e0 + (e1 - e0) * (ts - t0) / (t1 - t0)))
    return sorted(samples + out)


@settings(max_examples=200, deadline=None)
@given(t=tariffs(), session=sessions(),
       fractions=st.lists(st.floats(0.01, 0.99), min_size=26, max_size=26))
def test_splitting_the_samples_differently_changes_nothing_beyond_rounding(
        t: Tariff, session: dict[str, Any], fractions: list[float]) -> None:
    assume(session["samples"])
    kwargs = {"started_ms": session["started_ms"], "ended_ms": session["ended_ms"],
              "meter_start": session["meter_start"], "meter_stop": session["meter_stop"]}
    coarse = settle(t, session["samples"], **kwargs)
    finer = _interpolate(session["samples"], (session["started_ms"], session["meter_start"]),
                         fractions)
    fine = settle(t, finer, **kwargs)
    assert fine.energy == coarse.energy
    for a, b in zip(coarse.tiers, fine.tiers, strict=True):
        assert abs(a.energy - b.energy) <= D("0.0001"), (a, b)
    # and with only the first and last readings, constant power over the session: the
    # total is unchanged (the tiers may differ, the power profile is not the same)
    ends = settle(t, [], **kwargs)
    assert ends.energy == coarse.energy


@settings(max_examples=100, deadline=None)
@given(t=tariffs(), start=st.integers(1_700_000_000_000, 1_800_000_000_000),
       length=st.integers(60_000, 3 * 86_400_000), kw=st.integers(1, 300),
       times=st.lists(st.floats(0, 1), max_size=20), other=st.lists(st.floats(0, 1),
                                                                    max_size=20))
def test_at_constant_power_any_sampling_gives_the_same_tiers(
        t: Tariff, start: int, length: int, kw: int, times: list[float],
        other: list[float]) -> None:
    rate = D(kw) / D(3_600_000)  # kWh per ms

    def reading(ts: int) -> Decimal:
        return D(100) + rate * (ts - start)

    def run(fractions: list[float]) -> Settlement:
        stamps = sorted({start + int(length * f) for f in fractions})
        return settle(t, [(ts, reading(ts)) for ts in stamps], started_ms=start,
                      ended_ms=start + length, meter_start=reading(start),
                      meter_stop=reading(start + length))

    a, b = run(times), run(other)
    assert a.energy == b.energy
    for x, y in zip(a.tiers, b.tiers, strict=True):
        assert abs(x.energy - y.energy) <= D("0.0001")
