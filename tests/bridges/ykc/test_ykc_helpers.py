"""Units, tariff compilation, identifiers, CP56Time2a and primitive encodings."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

import pytest

from bridges.ykc import (
    ZERO_TRADE_NO,
    BodyError,
    Cp56Time2a,
    EncodeError,
    RealTimeData,
    SequenceCounter,
    TierPrice,
    YkcError,
    billing_model_prices,
    build_parallel_id,
    build_trade_no,
    compile_billing_model,
    is_zero_trade_no,
    model_code,
    parse_trade_no,
    slots_from_periods,
    tier_at,
)
from bridges.ykc.constants import (
    HardwareFault,
    StopReasonCategory,
    Tier,
    stop_reason_category,
)
from bridges.ykc.encoding import (
    decode_ascii,
    decode_bcd,
    decode_bcd_int,
    encode_ascii,
    encode_bcd,
    encode_bcd_int,
)
from bridges.ykc.units import A1, C_OFF50, KWH4, V1, YUAN2, YUAN4, YUAN5, unit_values

# -- units --------------------------------------------------------------------------------


def test_scales_are_exact_decimals() -> None:
    assert V1.to_unit(2251) == Decimal("225.1")
    assert A1.to_unit(0) == 0
    assert KWH4.to_unit(88000) == Decimal("8.8000")
    assert YUAN5.to_unit(40000) == Decimal("0.40000")
    assert YUAN4.to_unit(93280) == Decimal("9.3280")
    assert YUAN2.to_unit(100000) == Decimal("1000.00")
    assert C_OFF50.to_unit(0) == -50
    assert YUAN5.to_raw(Decimal("0.4")) == 40000
    assert YUAN5.to_raw("1.23456") == 123456
    assert YUAN2.to_raw(1000) == 100000
    assert C_OFF50.to_raw(-50) == 0


def test_scale_to_raw_is_strict_unless_rounding_requested() -> None:
    with pytest.raises(EncodeError, match="multiple"):
        YUAN5.to_raw(Decimal("0.123456"))
    assert YUAN5.to_raw(Decimal("0.123455"), rounding=ROUND_HALF_UP) == 12346
    for bad in (0.4, True, None, "abc", Decimal("NaN"), Decimal("Infinity"), "-1"):
        with pytest.raises(EncodeError):
            YUAN5.to_raw(bad)  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match="range"):
        YUAN5.to_raw(Decimal("42949.67296"), size=4)
    assert YUAN5.to_raw(Decimal("42949.67295"), size=4) == 0xFFFFFFFF


def test_unit_values_of_a_frame() -> None:
    frame = RealTimeData(ZERO_TRADE_NO, "32010200000001", 1, 2, 1, 0, 0, 0, 70, 0, 0, 0, 0, 0,
                         12345, 12345, 5000, int(HardwareFault.DOOR_OPEN))  # fmt: skip
    values = unit_values(frame)
    assert values["cable_temp_c"] == 20
    assert values["energy_kwh"] == Decimal("1.2345")
    assert values["amount_yuan"] == Decimal("0.5")
    assert "soc_pct" not in values
    assert HardwareFault(frame.hardware_faults) is HardwareFault.DOOR_OPEN
    with pytest.raises(TypeError):
        unit_values(RealTimeData)


# -- tariff -------------------------------------------------------------------------------

PRICES = [
    TierPrice(Decimal("1.2"), Decimal("0.6")),
    TierPrice(Decimal("1.0"), Decimal("0.6")),
    TierPrice(Decimal("0.7"), Decimal("0.6")),
    TierPrice(Decimal("0.3"), Decimal("0.6")),
]


def test_slots_from_periods_wraps_midnight_and_uses_default() -> None:
    slots = slots_from_periods(
        [("23:00", "07:00", Tier.VALLEY), (time(18), time(21), Tier.PEAK)], default=Tier.FLAT
    )
    assert len(slots) == 48
    assert slots[:14] == (Tier.VALLEY,) * 14
    assert slots[46:] == (Tier.VALLEY,) * 2
    assert slots[36:42] == (Tier.PEAK,) * 6
    assert slots[14:36] == (Tier.FLAT,) * 22
    assert slots_from_periods([("00:00", "00:00", Tier.TIP)]) == (0,) * 48


@pytest.mark.parametrize(
    ("periods", "default"),
    [
        ([("00:00", "12:00", Tier.TIP)], None),  # gap without default
        ([("00:00", "12:00", Tier.TIP), ("11:30", "24:00", Tier.PEAK)], None),  # overlap
        ([("00:15", "24:00", Tier.TIP)], None),  # not on a half hour
        ([("00:00", "24:00", 4)], None),  # bad tier
        ([("0000", "24:00", 1)], None),  # bad format
        ([("00:00", "25:00", 1)], None),
        ([("00:00", "12:00", 1)], 7),  # bad default
        ([(time(0), time(12, 0, 1), 1)], 0),
    ],
)
def test_slots_from_periods_errors(
    periods: list[tuple[str | time, str | time, int]], default: int | None
) -> None:
    with pytest.raises(EncodeError):
        slots_from_periods(periods, default=default)


def test_compile_billing_model_and_back() -> None:
    slots = slots_from_periods([("10:00", "11:00", Tier.TIP)], default=Tier.VALLEY)
    model = compile_billing_model(12, PRICES, slots)
    assert model.model_code == "0012"
    assert model.tiers[0].electricity_yuan5 == 120000
    assert model.tiers[3].service_yuan5 == 60000
    assert billing_model_prices(model) == tuple(PRICES)
    assert billing_model_prices(model)[Tier.TIP].total == Decimal("1.8")
    assert tier_at(model, time(10, 59)) is Tier.TIP
    assert tier_at(model, time(11, 0)) is Tier.VALLEY
    assert model.loss_ratio == 0


@pytest.mark.parametrize(
    ("code", "prices", "slots"),
    [
        ("0001", PRICES[:3], (0,) * 48),
        ("0001", PRICES, (0,) * 47),
        ("0001", PRICES, (0,) * 47 + (4,)),
        ("0001", [TierPrice(Decimal("0.123456"), Decimal(0))] * 4, (0,) * 48),
        ("0001", [TierPrice(Decimal(-1), Decimal(0))] * 4, (0,) * 48),
        ("10000", PRICES, (0,) * 48),
        (-1, PRICES, (0,) * 48),
        ("12a", PRICES, (0,) * 48),
    ],
)
def test_compile_billing_model_errors(
    code: str | int, prices: list[TierPrice], slots: tuple[int, ...]
) -> None:
    with pytest.raises(EncodeError):
        compile_billing_model(code, prices, slots)


def test_compile_billing_model_rounding_option() -> None:
    prices = [TierPrice(Decimal("0.123455"), Decimal("0.6"))] * 4
    model = compile_billing_model("1", prices, (0,) * 48, rounding=ROUND_HALF_UP)
    assert model.tiers[0].electricity_yuan5 == 12346
    assert model_code(7) == "0007"


# -- identifiers --------------------------------------------------------------------------


def test_trade_number_rule() -> None:
    when = datetime.fromisoformat("2024-05-20T14:30:15")
    trade_no = build_trade_no("32010200000001", 1, when, 1)
    assert trade_no == "32010200000001012405201430150001"
    parts = parse_trade_no(trade_no)
    assert parts is not None
    assert (parts.pile_code, parts.gun, parts.timestamp, parts.counter) == (
        "32010200000001",
        1,
        when,
        1,
    )
    assert parse_trade_no("1234") is None
    odd = parse_trade_no("20231212000010323239000000000000")
    assert odd is not None
    assert odd.timestamp is None  # J's sample does not follow the rule
    assert is_zero_trade_no(ZERO_TRADE_NO)
    assert not is_zero_trade_no(trade_no)
    assert build_parallel_id(when) == "240520143015"


@pytest.mark.parametrize(
    ("pile", "gun", "when", "counter"),
    [
        ("3201020000000", 1, "2024-01-01", 1),
        ("3201020000000A", 1, "2024-01-01", 1),
        ("32010200000001", 100, "2024-01-01", 1),
        ("32010200000001", 1, "2024-01-01", 10000),
        ("32010200000001", 1, "1999-12-31", 1),
    ],
)
def test_trade_number_errors(pile: str, gun: int, when: str, counter: int) -> None:
    with pytest.raises(EncodeError):
        build_trade_no(pile, gun, datetime.fromisoformat(when), counter)


def test_sequence_counter_wraps() -> None:
    counter = SequenceCounter(0xFFFE)
    assert [counter.next() for _ in range(3)] == [b"\xff\xfe", b"\xff\xff", b"\x00\x00"]
    counter.reset()
    assert counter.next() == b"\x00\x00"


# -- CP56Time2a ---------------------------------------------------------------------------


def test_cp56_reference_example() -> None:
    stamp = Cp56Time2a.decode(bytes.fromhex("98B70E1110 0314"))
    assert stamp.to_datetime() == datetime.fromisoformat("2020-03-16T17:14:47")
    assert stamp.encode() == bytes.fromhex("98B70E11100314")


def test_cp56_flags_weekday_and_timezone() -> None:
    when = datetime.fromisoformat("2023-12-13T17:04:14.250")
    stamp = Cp56Time2a.from_datetime(when, with_weekday=True)
    assert stamp.day_of_week == 3
    raw = stamp.encode()
    assert raw == bytes.fromhex("AA3704116D0C17")
    assert Cp56Time2a.decode(raw) == stamp
    flagged = Cp56Time2a(2023, 1, 1, 0, 0, 0, invalid=True, summer_time=True)
    assert Cp56Time2a.decode(flagged.encode()) == flagged
    china = timezone(timedelta(hours=8))
    aware = stamp.to_datetime(china)
    assert aware is not None
    assert aware.utcoffset() == timedelta(hours=8)


def test_cp56_invalid_dates_decode_but_have_no_datetime() -> None:
    assert Cp56Time2a.decode(bytes(7)).to_datetime() is None
    assert Cp56Time2a.decode(bytes.fromhex("60EA00000101 18")).to_datetime() is None  # 60 s
    with pytest.raises(BodyError):
        Cp56Time2a.decode(bytes(6))
    with pytest.raises(EncodeError):
        Cp56Time2a(2024, 16, 1, 0, 0, 0).encode()


# -- primitives ---------------------------------------------------------------------------


def test_bcd_and_ascii_primitives() -> None:
    assert encode_bcd("1", 2) == b"\x00\x01"
    assert decode_bcd(b"\x89\x86\x04\xd1") == "898604D1"
    assert encode_bcd("898604d1", 4) == b"\x89\x86\x04\xd1"
    assert decode_bcd_int(b"\x12") == 12
    assert encode_bcd_int(12, 1) == b"\x12"
    with pytest.raises(BodyError):
        decode_bcd_int(b"\x1a")
    for bad in ("123", "1g", 12):
        with pytest.raises(EncodeError):
            encode_bcd(bad, 1)
    assert encode_ascii("ABC", 5, reverse=True) == b"\x00\x00CBA"
    assert decode_ascii(b"\x00\x00CBA", reverse=True) == "ABC"
    assert decode_ascii(b"v1\x00x\x00") == "v1\x00x"
    assert decode_ascii(b"\xff\xfe") == "\xff\xfe"


def test_error_tree() -> None:
    assert issubclass(EncodeError, YkcError)
    assert issubclass(EncodeError, ValueError)
    assert stop_reason_category(0x40) is StopReasonCategory.NORMAL
    assert stop_reason_category(0x4E) is StopReasonCategory.START_FAILED
    assert stop_reason_category(0x6A) is StopReasonCategory.ABNORMAL
    assert stop_reason_category(0x90) is StopReasonCategory.UNKNOWN
