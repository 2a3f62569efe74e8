"""Tariffs: documents, validation errors, tier lookup, segments, and the YKC edge document."""

from __future__ import annotations

import itertools
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridges.ykc.mapper import billing_model_from_doc
from bridges.ykc.tariff import billing_model_prices
from cloud.billing import EdgeTariffError, Tariff, TariffError, Tier, edge_doc, flat_tariff
from cloud.billing.tariff import Period, TierRate
from tests.cloud.billing.helpers import DOC, SHANGHAI, ms, tariff

# -- parsing and validation ----------------------------------------------------------------


def test_document_round_trip_is_canonical() -> None:
    t = tariff()
    doc = t.to_doc()
    assert Tariff.from_doc(doc) == t
    # the wrapping valley period became two periods; rates carry 5 decimals
    assert doc["periods"][0] == {"start": "00:00", "end": "08:00", "tier": "valley"}
    assert doc["periods"][-1] == {"start": "23:00", "end": "24:00", "tier": "valley"}
    assert doc["tiers"]["tip"] == {"energy": "1.20000", "service": "0.60000"}
    assert doc["tz"] == "Asia/Shanghai"


def test_slots_and_periods_describe_the_same_tariff() -> None:
    t = tariff()
    slots = Tariff.from_doc({"tiers": DOC["tiers"], "slots": [x.value for x in t.slot_tiers()]})
    assert slots.periods == t.periods
    assert slots.rates == t.rates


@pytest.mark.parametrize(("periods", "message"), [
    ([{"start": "00:00", "end": "12:00", "tier": "flat"},
      {"start": "13:00", "end": "24:00", "tier": "peak"}], "no tier for 12:00-13:00"),
    ([{"start": "00:00", "end": "12:30", "tier": "flat"},
      {"start": "12:00", "end": "24:00", "tier": "peak"}], "overlap at 12:00-12:30"),
    ([{"start": "22:00", "end": "06:00", "tier": "valley"},
      {"start": "05:45", "end": "22:00", "tier": "flat"}], "overlap at 05:45-06:00"),
    ([{"start": "08:00", "end": "08:00", "tier": "flat"}], "is empty"),
    ([{"start": "8:00am", "end": "24:00", "tier": "flat"}], "expected \"HH:MM\""),
    ([{"start": "00:00", "end": "24:30", "tier": "flat"}], "not a time of day"),
    ([{"start": "24:00", "end": "08:00", "tier": "flat"}], "cannot start at 24:00"),
    ([{"start": "00:00", "end": "24:00", "tier": "cheap"}], "unknown tier 'cheap'"),
    ([{"start": "00:00", "end": "24:00"}], "missing 'tier'"),
    ([{"start": "00:00", "end": "24:00", "tier": "flat", "price": 1}], "unknown key(s) 'price'"),
])
def test_bad_periods_are_refused_with_the_minutes_named(periods: list[dict[str, Any]],
                                                        message: str) -> None:
    with pytest.raises(TariffError) as err:
        Tariff.from_doc({"tiers": {"flat": {"energy": "1", "service": "0"},
                                   "peak": {"energy": "2", "service": "0"},
                                   "valley": {"energy": "0.5", "service": "0"}},
                         "periods": periods})
    assert message in str(err.value)


@pytest.mark.parametrize(("tiers", "message"), [
    ({"flat": {"energy": "0.123456", "service": "0"}}, "more than 5 decimals"),
    ({"flat": {"energy": "-0.1", "service": "0"}}, "cannot be negative"),
    ({"flat": {"energy": "abc", "service": "0"}}, "not a decimal number"),
    ({"flat": {"energy": "50000", "service": "0"}}, "above the largest rate"),
    ({"flat": {"energy": "1"}}, "needs both"),
    ({"flat": {"energy": True, "service": "0"}}, "expected a decimal number"),
    ({"flat": {"energy": "NaN", "service": "0"}}, "not a finite number"),
    ({"peak": {"energy": "1", "service": "0"}}, "uses 'flat' but it has no rates"),
])
def test_bad_rates_are_refused(tiers: dict[str, Any], message: str) -> None:
    with pytest.raises(TariffError) as err:
        Tariff.from_doc({"tiers": tiers, "periods": [{"start": "00:00", "end": "24:00",
                                                       "tier": "flat"}]})
    assert message in str(err.value)


@pytest.mark.parametrize(("doc", "message"), [
    ({"tiers": {"flat": {"energy": "1", "service": "0"}}}, "exactly one of 'slots'"),
    ({"tiers": {"flat": {"energy": "1", "service": "0"}}, "slots": ["flat"] * 47},
     "expected 48 tier names"),
    ({"tiers": {"flat": {"energy": "1", "service": "0"}}, "slots": ["flat"] * 48,
      "periods": [{"start": "00:00", "end": "24:00", "tier": "flat"}]}, "exactly one of"),
    ({"tiers": {"flat": {"energy": "1", "service": "0"}}, "slots": ["flat"] * 48,
      "tz": "Mars/Olympus"}, "unknown time zone"),
    ({"tiers": {"flat": {"energy": "1", "service": "0"}}, "slots": ["flat"] * 48,
      "effective_from": "yesterday"}, "effective_from"),
    ({"tiers": {"flat": {"energy": "1", "service": "0"}}, "slots": ["flat"] * 48,
      "currency": "CNY"}, "unknown key(s) 'currency'"),
    ({"tiers": {}, "slots": ["flat"] * 48}, "tiers: expected"),
])
def test_bad_documents_are_refused(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(TariffError) as err:
        Tariff.from_doc(doc)
    assert message in str(err.value)


def test_floats_are_taken_as_the_decimal_they_print_as() -> None:
    t = Tariff.from_doc({"tiers": {"flat": {"energy": 0.7, "service": 0.1}},
                         "slots": ["flat"] * 48})
    assert t.rate("flat") == TierRate(Decimal("0.7"), Decimal("0.1"))


def test_minute_resolution_and_24_00() -> None:
    t = Tariff.from_doc({"tiers": {"flat": {"energy": "1", "service": "0"},
                                   "peak": {"energy": "2", "service": "0"}},
                         "periods": [{"start": "00:00", "end": "07:47", "tier": "flat"},
                                     {"start": "07:47", "end": "19:03", "tier": "peak"},
                                     {"start": "19:03", "end": "24:00", "tier": "flat"}]})
    assert t.tier_at(time(7, 46)) is Tier.FLAT
    assert t.tier_at(time(7, 47)) is Tier.PEAK
    assert t.tier_at(time(19, 2, 59)) is Tier.PEAK
    assert t.tier_at(time(19, 3)) is Tier.FLAT
    assert t.tier_at(time(23, 59, 59)) is Tier.FLAT
    assert not t.half_hour_aligned


def test_tier_at_converts_aware_datetimes_to_the_tariff_zone() -> None:
    t = tariff()
    # 02:30 UTC = 10:30 in Shanghai: tip
    assert t.tier_at(datetime(2025, 3, 1, 2, 30, tzinfo=ZoneInfo("UTC"))) is Tier.TIP
    assert t.tier_at(time(2, 30)) is Tier.VALLEY
    assert t.tier_at_ms(ms(2025, 3, 1, 10, 30)) is Tier.TIP


def test_direct_construction_is_validated() -> None:
    with pytest.raises(TariffError, match="no tier for 12:00-24:00"):
        Tariff(rates={Tier.FLAT: TierRate(Decimal(1), Decimal(0))},
               periods=(Period(0, 720, Tier.FLAT),))
    with pytest.raises(TariffError, match="more than 5 decimals"):
        flat_tariff("0.000001")


# -- segments -------------------------------------------------------------------------------


def test_segments_cross_tier_boundaries_and_midnight() -> None:
    t = tariff()
    segments = t.segments(ms(2025, 3, 1, 20, 30), ms(2025, 3, 2, 8, 15))
    assert segments == [
        (ms(2025, 3, 1, 20, 30), ms(2025, 3, 1, 21), Tier.PEAK),
        (ms(2025, 3, 1, 21), ms(2025, 3, 1, 23), Tier.FLAT),
        (ms(2025, 3, 1, 23), ms(2025, 3, 2, 0), Tier.VALLEY),  # split at local midnight
        (ms(2025, 3, 2, 0), ms(2025, 3, 2, 8), Tier.VALLEY),
        (ms(2025, 3, 2, 8), ms(2025, 3, 2, 8, 15), Tier.FLAT),
    ]
    assert t.segments(5, 5) == []
    with pytest.raises(ValueError, match="before start"):
        t.segments(6, 5)


def test_segments_follow_daylight_saving_wall_time() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    t = Tariff.from_doc({"tiers": {"flat": {"energy": "1", "service": "0"},
                                   "valley": {"energy": "0.5", "service": "0"}},
                         "periods": [{"start": "00:00", "end": "02:30", "tier": "valley"},
                                     {"start": "02:30", "end": "24:00", "tier": "flat"}],
                         "tz": "Europe/Berlin"})
    # 2025-03-30: clocks jump from 02:00 to 03:00, so 02:30 never happens on the wall
    start = ms(2025, 3, 30, 1, 0, tz=berlin)
    end = ms(2025, 3, 30, 4, 0, tz=berlin)
    segments = t.segments(start, end)
    assert [s.tier for s in segments] == [Tier.VALLEY, Tier.FLAT]
    # one real hour of valley (01:00-02:00 CET), then flat from the jump (03:00 CEST)
    assert segments[0].end_ms - segments[0].start_ms == 3_600_000
    assert segments[1].end_ms - segments[1].start_ms == 3_600_000


_ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "UTC"]


@st.composite
def tariffs(draw: st.DrawFn, dst: bool = False) -> Tariff:
    """Random tariffs: 1-7 periods at random minutes, random tiers and rates.

    ``dst``: a zone with daylight saving and a boundary inside 02:00-03:00, the hour the
    spring change skips and the autumn change repeats.
    """
    cuts: set[int] = draw(st.sets(st.integers(1, 1439), max_size=5))
    if dst:
        cuts.add(draw(st.integers(121, 179)))
    bounds = [0, *sorted(cuts), 1440]
    periods = []
    for lo, hi in itertools.pairwise(bounds):
        periods.append(Period(lo, hi, draw(st.sampled_from(list(Tier)))))
    rate = st.decimals(min_value=0, max_value=5, places=5, allow_nan=False,
                       allow_infinity=False)
    rates = {p.tier: TierRate(draw(rate), draw(rate)) for p in periods}
    zones = _ZONES[1:3] if dst else _ZONES
    return Tariff(rates=rates, periods=tuple(periods), tz=draw(st.sampled_from(zones)))


#: a day before some daylight-saving changes (Berlin and New York, spring and autumn 2025)
_DST_EVES = [1743210000000, 1761354000000, 1741413600000, 1762002000000]
_starts = st.one_of(
    st.integers(1_700_000_000_000, 1_800_000_000_000),
    st.builds(lambda base, shift: base + shift, st.sampled_from(_DST_EVES),
              st.integers(0, 2 * 86_400_000)),
)


@settings(max_examples=200, deadline=None)
@given(t=tariffs(), start=_starts, length=st.integers(1, 4 * 86_400_000))
def test_segments_partition_the_range_at_the_right_tiers(t: Tariff, start: int,
                                                         length: int) -> None:
    _check_partition(t, start, start + length)


@settings(max_examples=100, deadline=None)
@given(t=tariffs(dst=True),
       start=st.builds(lambda base, shift: base + shift, st.sampled_from(_DST_EVES),
                       st.integers(0, 86_400_000)),
       length=st.integers(86_400_000, 2 * 86_400_000))
def test_segments_across_daylight_saving_changes(t: Tariff, start: int, length: int) -> None:
    _check_partition(t, start, start + length)


def _check_partition(t: Tariff, start: int, end: int) -> None:
    segments = t.segments(start, end)
    assert segments[0].start_ms == start and segments[-1].end_ms == end
    for prev, seg in itertools.pairwise(segments):
        assert prev.end_ms == seg.start_ms
        # a boundary is a tier change or a local midnight
        assert prev.tier != seg.tier or \
            datetime.fromtimestamp(seg.start_ms / 1000, t.zone).time() == time(0, 0)
    for seg in segments:
        assert seg.start_ms < seg.end_ms
        assert t.tier_at_ms(seg.start_ms) is seg.tier
        assert t.tier_at_ms(seg.end_ms - 1) is seg.tier
        first = datetime.fromtimestamp(seg.start_ms / 1000, t.zone).date()
        last = datetime.fromtimestamp((seg.end_ms - 1) / 1000, t.zone).date()
        assert first == last


@settings(max_examples=100, deadline=None)
@given(t=tariffs())
def test_any_tariff_round_trips_through_its_document(t: Tariff) -> None:
    assert Tariff.from_doc(t.to_doc()) == t


# -- the YKC edge document ------------------------------------------------------------------


def test_edge_doc_compiles_with_the_ykc_mapper() -> None:
    t = tariff()
    doc = edge_doc(t, 7)
    model = billing_model_from_doc(doc)
    assert model.model_code == "0007"
    # the 48 half hours of the worked example: 03x16 02x4 00x2 01x2 02x12 01x6 02x4 03x2
    assert model.slots == (3,) * 16 + (2,) * 4 + (0,) * 2 + (1,) * 2 + (2,) * 12 + \
        (1,) * 6 + (2,) * 4 + (3,) * 2
    prices = billing_model_prices(model)
    assert [(p.electricity, p.service) for p in prices] == [
        (Decimal("1.2"), Decimal("0.6")), (Decimal("1.0"), Decimal("0.6")),
        (Decimal("0.7"), Decimal("0.6")), (Decimal("0.3"), Decimal("0.6"))]
    # every slot carries the tier the platform bills in that half hour
    for slot in range(48):
        minute = slot * 30
        assert doc["slots"][slot] == t.tier_at_minute(minute).value
    assert billing_model_from_doc(edge_doc(t, 12345)).model_code == "2345"
    assert billing_model_from_doc(edge_doc(t, 1, code=77)).model_code == "0077"


def test_edge_doc_fills_unused_ykc_tiers_and_maps_deep_valley() -> None:
    t = Tariff.from_doc({"tiers": {"flat": {"energy": "0.8", "service": "0.4"},
                                   "deep_valley": {"energy": "0.2", "service": "0.4"}},
                         "periods": [{"start": "00:00", "end": "06:00", "tier": "deep_valley"},
                                     {"start": "06:00", "end": "24:00", "tier": "flat"}]})
    model = billing_model_from_doc(edge_doc(t, 3))
    assert model.slots == (3,) * 12 + (2,) * 36
    prices = billing_model_prices(model)
    assert (prices[3].electricity, prices[3].service) == (Decimal("0.2"), Decimal("0.4"))
    assert (prices[2].electricity, prices[2].service) == (Decimal("0.8"), Decimal("0.4"))


def test_edge_doc_refuses_what_ykc_cannot_express() -> None:
    five = Tariff.from_doc({
        "tiers": {name: {"energy": "1", "service": "0"} for name in
                  ("tip", "peak", "flat", "valley", "deep_valley")},
        "slots": ["deep_valley"] * 8 + ["valley"] * 8 + ["flat"] * 8 + ["peak"] * 8 +
                 ["tip"] * 8 + ["flat"] * 8})
    with pytest.raises(EdgeTariffError, match="4 tiers"):
        edge_doc(five, 1)
    with pytest.raises(EdgeTariffError, match="0..9999"):
        edge_doc(tariff(), 1, code=10000)


def test_minute_boundaries_are_refused_or_rounded_by_majority() -> None:
    t = Tariff.from_doc({"tiers": {"flat": {"energy": "1", "service": "0"},
                                   "peak": {"energy": "2", "service": "0"}},
                         "periods": [{"start": "00:00", "end": "08:10", "tier": "flat"},
                                     {"start": "08:10", "end": "18:45", "tier": "peak"},
                                     {"start": "18:45", "end": "19:00", "tier": "flat"},
                                     {"start": "19:00", "end": "24:00", "tier": "flat"}]})
    with pytest.raises(EdgeTariffError, match="08:10 is not on a half hour"):
        edge_doc(t, 1)
    doc = edge_doc(t, 1, rounding="majority")
    slots = doc["slots"]
    assert slots[16] == "peak"  # 08:00-08:30: 10 min flat, 20 min peak
    # 18:30-19:00: 15 min peak, 15 min flat: a tie goes to the tier at the start (peak)
    assert slots[37] == "peak"
    assert slots[38] == "flat"
    tie = Tariff.from_doc({"tiers": {"flat": {"energy": "1", "service": "0"},
                                     "peak": {"energy": "2", "service": "0"}},
                           "periods": [{"start": "00:00", "end": "12:15", "tier": "flat"},
                                       {"start": "12:15", "end": "24:00", "tier": "peak"}]})
    assert edge_doc(tie, 1, rounding="majority")["slots"][24] == "flat"
    assert billing_model_from_doc(doc).slots[16] == 1


def test_flat_tariff_helper() -> None:
    t = flat_tariff("1.5", "0.5", tz="UTC")
    assert t.tiers_used == (Tier.FLAT,)
    assert t.tier_at(time(13, 0)) is Tier.FLAT
    assert t.segments(0, int(timedelta(days=2).total_seconds() * 1000))[1].start_ms == 86_400_000
    assert t.zone == ZoneInfo("UTC") and t.zone != SHANGHAI
