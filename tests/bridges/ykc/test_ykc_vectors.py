"""Byte-exact tests against the wire reference (shared/protocols/ykc.md §2.7, §6.4)
and sample frames of an independent implementation (J, CRCs verified)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from bridges.ykc import (
    BadBodyLength,
    BadCrc,
    BillingModel,
    BillingModelReply,
    BillingModelRequest,
    BillingModelSet,
    BillingModelVerify,
    BillingModelVerifyReply,
    ChargingError,
    Cp56Time2a,
    CrcOrder,
    Heartbeat,
    HeartbeatReply,
    Login,
    LoginReply,
    Message,
    RealTimeData,
    RemoteStart,
    RemoteStartReply,
    RemoteStop,
    TierPrice,
    TimeSync,
    TransactionRecord,
    TransactionRecordConfirm,
    build_trade_no,
    compile_billing_model,
    crc16_modbus,
    decode_frame,
    encode_frame,
    slots_from_periods,
)
from bridges.ykc.constants import ConnectorStatus, PileType, Tier, TradeFlag
from bridges.ykc.units import KWH4, YUAN2, YUAN4, YUAN5, unit_values


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


PILE = "32010200000001"

REAL_LOGIN = h(
    "68 22 00 00 00 01 10 00 10 01 00 00 01 01 01 0F 31 2E 31 30 2E 32 33 00 01"
    " 00 00 00 00 00 00 00 00 00 00 04 D1 AA"
)


def test_crc_of_real_capture() -> None:
    assert crc16_modbus(REAL_LOGIN[2:-2]) == 0xAAD1
    assert crc16_modbus(b"123456789") == 0x4B37  # CRC-16/MODBUS check value


def test_real_login_capture_decodes_and_reencodes() -> None:
    frame, consumed = decode_frame(REAL_LOGIN)
    assert consumed == len(REAL_LOGIN) == 38
    assert frame.seq == b"\x00\x00"
    assert frame.crc_order is CrcOrder.LOW_FIRST
    assert frame.message == Login(
        pile_code="10001001000001",
        pile_type=PileType.AC,
        gun_count=1,
        protocol_version=0x0F,
        firmware_version="1.10.23",
        network_type=1,
        iccid="0" * 20,
        carrier=4,
    )
    assert frame.encode() == REAL_LOGIN
    assert encode_frame(frame.message, frame.seq) == REAL_LOGIN


TRADE_NO = build_trade_no(PILE, 1, datetime.fromisoformat("2024-05-20T14:30:15"), 1)

ENCODER_TABLE = [
    pytest.param(
        Login(PILE, PileType.DC, 2, 0x10, "v4.1.50", 1, "0" * 20, 4),
        0,
        "68 22 00 00 00 01 32 01 02 00 00 00 01 00 02 10 76 34 2E 31 2E 35 30 00 01"
        " 00 00 00 00 00 00 00 00 00 00 04 6B 8F",
        id="0x01",
    ),
    pytest.param(
        LoginReply(PILE, 0), 0, "68 0C 00 00 00 02 32 01 02 00 00 00 01 00 EF 1D", id="0x02"
    ),
    pytest.param(
        Heartbeat(PILE, 1, 0), 1, "68 0D 00 01 00 03 32 01 02 00 00 00 01 01 00 F1 1A", id="0x03"
    ),
    pytest.param(
        HeartbeatReply(PILE, 1),
        1,
        "68 0D 00 01 00 04 32 01 02 00 00 00 01 01 00 40 C0",
        id="0x04",
    ),
    pytest.param(
        BillingModelVerify(PILE, "0000"),
        2,
        "68 0D 00 02 00 05 32 01 02 00 00 00 01 00 00 14 91",
        id="0x05",
    ),
    pytest.param(
        BillingModelVerifyReply(PILE, "0000", 1),
        2,
        "68 0E 00 02 00 06 32 01 02 00 00 00 01 00 00 01 5F 8B",
        id="0x06",
    ),
    pytest.param(
        BillingModelRequest(PILE), 3, "68 0B 00 03 00 09 32 01 02 00 00 00 01 9C 93", id="0x09"
    ),
    pytest.param(
        TimeSync(PILE, Cp56Time2a.from_datetime(datetime.fromisoformat("2024-05-20T14:30:15"))),
        4,
        "68 12 00 04 00 56 32 01 02 00 00 00 01 98 3A 1E 0E 14 05 18 19 44",
        id="0x56",
    ),
    pytest.param(
        RemoteStop(PILE, 1), 5, "68 0C 00 05 00 36 32 01 02 00 00 00 01 01 59 D0", id="0x36"
    ),
    pytest.param(
        RemoteStart(TRADE_NO, PILE, 1, "0000001000000573", "00000000D14B0A54", 100000),
        6,
        "68 30 00 06 00 34 32 01 02 00 00 00 01 01 24 05 20 14 30 15 00 01 32 01 02 00 00 00"
        " 01 01 00 00 00 10 00 00 05 73 00 00 00 00 D1 4B 0A 54 A0 86 01 00 6A EF",
        id="0x34",
    ),
]


@pytest.mark.parametrize(("message", "seq", "wire"), ENCODER_TABLE)
def test_encoder_table(message: object, seq: int, wire: str) -> None:
    assert isinstance(message, Message)
    data = h(wire)
    assert encode_frame(message, seq) == data
    assert encode_frame(message, seq.to_bytes(2, "big")) == data
    frame, consumed = decode_frame(data)
    assert consumed == len(data)
    assert frame.message == message
    assert frame.seq == seq.to_bytes(2, "big")


def test_remote_start_short_card_numbers_are_left_padded() -> None:
    assert TRADE_NO == "32010200000001012405201430150001"
    short = RemoteStart(TRADE_NO, PILE, 1, "1000000573", "D14B0A54", 100000)
    wire = encode_frame(short, 6)
    assert wire == h(str(ENCODER_TABLE[-1].values[2]))
    message = decode_frame(wire)[0].message
    assert isinstance(message, RemoteStart)
    assert message.logical_card == "0000001000000573"
    assert message.physical_card == "00000000D14B0A54"
    assert YUAN2.to_unit(message.balance_yuan2) == Decimal("1000.00")


# §6.4: tip 1.2 + 0.6 (10-11), peak 1.0 + 0.6 (11-12, 18-21),
# flat 0.7 + 0.6 (08-10, 12-18, 21-23), valley 0.3 + 0.6 (00-08, 23-24)
BILLING_0A = h(
    "68 5E 00 03 00 0A 32 01 02 00 00 00 01 00 01"
    " C0 D4 01 00 60 EA 00 00"
    " A0 86 01 00 60 EA 00 00"
    " 70 11 01 00 60 EA 00 00"
    " 30 75 00 00 60 EA 00 00"
    " 00"
    + " 03" * 16
    + " 02" * 4
    + " 00" * 2
    + " 01" * 2
    + " 02" * 12
    + " 01" * 6
    + " 02" * 4
    + " 03" * 2
    + " C4 7D"
)


def _example_model() -> BillingModel:
    slots = slots_from_periods(
        [
            ("00:00", "08:00", Tier.VALLEY),
            ("08:00", "10:00", Tier.FLAT),
            ("10:00", "11:00", Tier.TIP),
            ("11:00", "12:00", Tier.PEAK),
            ("12:00", "18:00", Tier.FLAT),
            ("18:00", "21:00", Tier.PEAK),
            ("21:00", "23:00", Tier.FLAT),
            ("23:00", "24:00", Tier.VALLEY),
        ]
    )
    service = Decimal("0.6")
    return compile_billing_model(
        "0001",
        [
            TierPrice(Decimal("1.2"), service),
            TierPrice(Decimal("1.0"), service),
            TierPrice(Decimal("0.7"), service),
            TierPrice(Decimal("0.3"), service),
        ],
        slots,
    )


def test_billing_model_reply_example_encodes_byte_for_byte() -> None:
    model = _example_model()
    message = BillingModelReply(PILE, model)
    assert encode_frame(message, 3) == BILLING_0A
    frame, _ = decode_frame(BILLING_0A)
    assert frame.message == message
    assert YUAN5.to_unit(message.model.tiers[0].electricity_yuan5) == Decimal("1.2")


def test_billing_model_set_shares_the_body() -> None:
    model = _example_model()
    push = BillingModelSet(PILE, model)
    wire = encode_frame(push, 9)
    assert wire[1] == 0x5E
    assert wire[5] == 0x58
    assert wire[6:-2] == BILLING_0A[6:-2]
    frame, _ = decode_frame(wire)
    assert frame.message == push


# Sample frames from sanbing-java/JChargePointProtocol READMD.md (pile 20231212000010).
J_SAMPLES_LOW_FIRST = {
    "login": "68 22 00 19 00 01 20 23 12 12 00 00 10 01 01 10 47 56 2E 39 35 72 31 33 00 89 86"
    " 04 D1 17 22 D0 34 86 06 02 87 4E",
    "login_reply": "68 0C 00 19 00 02 20 23 12 12 00 00 10 00 A1 55",
    "time_sync": "68 12 01 00 00 56 20 23 12 12 00 00 10 30 75 0F 11 12 0C 18 04 7D",
    "verify_reply": "68 0E AD 71 00 06 20 23 12 12 00 00 10 00 00 00 9E 1A",
    "remote_start": "68 30 01 00 00 34 00 00 00 00 00 00 12 34 56 78 90 12 34 56 78 90 20 23"
    " 12 12 00 00 10 01 56 78 90 12 34 56 78 90 56 78 90 12 34 56 78 90 10 27 00 00 5F D9",
    "confirm": "68 15 46 00 00 40 20 23 12 12 00 00 10 32 32 39 00 00 00 00 00 00 00 9D 7B",
    "bms_params": "68 31 00 16 00 17 32 01 02 00 00 00 00 11 15 11 16 15 55 35 02 60 20 23 12"
    " 12 00 00 10 01" + " 00" * 21 + " BB 78",
}
J_SAMPLES_HIGH_FIRST = {
    "heartbeat": "68 0D 25 D3 00 03 20 23 12 12 00 00 10 01 00 D1 AC",
    "verify": "68 0D 71 AD 00 05 20 23 12 12 00 00 10 00 00 22 2B",
    "model_request": "68 0B 00 07 00 09 20 23 12 12 00 00 10 72 ED",
    "realtime": "68 40 BB BD 00 13 20 23 12 12 00 00 10 00 00 00 00 10 05 71 36 00 32 01 06 00"
    " 39 56 00 02 03 02 01 94 0E F4 03 54 00 00 00 00 00 00 00 00 4E 55 10 00 20 00 C0 57 01"
    " 00 00 00 00 00 60 6C 01 00 00 00 93 73",
    "start_reply": "68 1E 00 02 00 33 00 00 00 00 00 00 12 34 56 78 90 12 34 56 78 90 20 23 12"
    " 12 00 00 10 01 01 00 41 1D",
    "transaction": "68 A2 00 46 00 3B 20 23 12 12 00 00 10 32 32 39 00 00 00 00 00 00 20 23 12"
    " 12 00 00 10 01 B0 36 04 11 6D 0C 17 A0 8C 09 11 6D 0C 17 F0 49 02 00"
    + " 00" * 12
    + " D0 FB 01 00"
    + " 00" * 12
    + " B0 AD 01 00"
    + " 00" * 12
    + " 90 5F 01 00 72 06 00 00 72 06 00 00 78 05 00 00"
    + " 00" * 10
    + " 72 06 00 00 72 06 00 00 78 05 00 00"
    + " 00" * 17
    + " 01 A0 8C 09 11 6D 0C 17 40"
    + " 00" * 8
    + " 03 E0",
    "error": "68 24 00 17 00 1B 32 01 02 00 00 00 00 11 15 11 16 15 55 35 02 06 20 23 12 12 00"
    " 00 10 01 00 00 00 00 00 00 00 00 79 00",
}


@pytest.mark.parametrize("name", sorted(J_SAMPLES_LOW_FIRST))
def test_independent_samples_low_byte_first(name: str) -> None:
    data = h(J_SAMPLES_LOW_FIRST[name])
    frame, consumed = decode_frame(data)
    assert consumed == len(data)
    assert frame.crc_order is CrcOrder.LOW_FIRST
    assert frame.encode() == data


@pytest.mark.parametrize("name", sorted(J_SAMPLES_HIGH_FIRST))
def test_high_byte_first_crc_accepted(name: str) -> None:
    data = h(J_SAMPLES_HIGH_FIRST[name])
    frame, consumed = decode_frame(data)
    assert consumed == len(data)
    assert frame.crc_order is CrcOrder.HIGH_FIRST
    # we always answer low byte first, but can reproduce the peer's bytes on request
    assert frame.encode(crc_order=CrcOrder.HIGH_FIRST) == data
    relowed = frame.encode()
    assert relowed[:-2] == data[:-2]
    assert relowed[-2:] == data[-2:][::-1]


def test_login_with_hex_nibbles_in_iccid_round_trips() -> None:
    frame, _ = decode_frame(h(J_SAMPLES_LOW_FIRST["login"]))
    message = frame.message
    assert isinstance(message, Login)
    assert message.iccid == "898604D11722D0348606"
    assert message.firmware_version == "GV.95r13"
    assert message.protocol_version == 0x10


def test_realtime_sample_values() -> None:
    frame, _ = decode_frame(h(J_SAMPLES_HIGH_FIRST["realtime"]))
    message = frame.message
    assert isinstance(message, RealTimeData)
    assert frame.seq == b"\xbb\xbd"
    assert message.status == ConnectorStatus.CHARGING
    assert (message.gun, message.gun_holstered, message.gun_plugged) == (2, 2, 1)
    assert message.soc_pct == 78
    assert (message.charged_min, message.remaining_min) == (16, 32)
    assert unit_values(message) == {
        "output_voltage_v": Decimal("373.2"),
        "output_current_a": Decimal("101.2"),
        "cable_temp_c": Decimal(34),
        "battery_max_temp_c": Decimal(35),
        "energy_kwh": Decimal("8.8"),
        "loss_energy_kwh": Decimal(0),
        "amount_yuan": Decimal("9.328"),
    }


def test_transaction_record_sample_values() -> None:
    frame, _ = decode_frame(h(J_SAMPLES_HIGH_FIRST["transaction"]))
    record = frame.message
    assert isinstance(record, TransactionRecord)
    assert record.start_time.to_datetime() == datetime.fromisoformat("2023-12-13T17:04:14")
    assert record.end_time.to_datetime() == datetime.fromisoformat("2023-12-13T17:09:36")
    assert record.start_time.day_of_week == 3  # Wednesday, kept for byte-exact re-encoding
    prices = [YUAN5.to_unit(t.price_yuan5) for t in record.tiers]
    assert prices == [Decimal("1.5"), Decimal("1.3"), Decimal("1.1"), Decimal("0.9")]
    valley = record.tiers[Tier.VALLEY]
    assert KWH4.to_unit(valley.energy_kwh4) == Decimal("0.165")
    assert YUAN4.to_unit(valley.amount_yuan4) == Decimal("0.14")
    assert KWH4.to_unit(record.total_energy_kwh4) == Decimal("0.165")
    assert YUAN4.to_unit(record.total_amount_yuan4) == Decimal("0.14")
    assert record.trade_flag == TradeFlag.APP
    assert record.stop_reason == 0x40
    assert record.vin == ""
    reply = TransactionRecordConfirm(record.trade_no, 0)
    assert encode_frame(reply, b"\x46\x00") == h(J_SAMPLES_LOW_FIRST["confirm"])


def test_remote_start_reply_and_error_samples() -> None:
    frame, _ = decode_frame(h(J_SAMPLES_HIGH_FIRST["start_reply"]))
    assert frame.message == RemoteStartReply(
        "00000000000012345678901234567890", "20231212000010", 1, 1, 0
    )
    frame, _ = decode_frame(h(J_SAMPLES_HIGH_FIRST["error"]))
    assert isinstance(frame.message, ChargingError)
    assert frame.message.flags == bytes(8)


def test_sample_with_wrong_length_byte_is_a_crc_error() -> None:
    # J's 0x04 sample has L=0x09 although its body is 9 bytes (L should be 0x0D)
    with pytest.raises(BadCrc):
        decode_frame(h("68 09 25 D3 00 04 20 23 12 12 00 00 10 01 00 1D 0B"))


def test_sample_with_body_of_another_frame_is_a_body_length_error() -> None:
    # J's 0x25 sample carries a 45-byte (0x17-shaped) body with a valid CRC; 0x25 is 31 bytes
    data = h(
        "68 31 01 00 00 25 32 01 02 00 00 00 00 11 15 11 16 15 55 35 02 60 20 23 12 12 00 00"
        " 10 01 01 01 01 01 01 01 00 01 00 01 00 01 00 01 00 01 00 01 00 00 00 BE C8"
    )
    with pytest.raises(BadBodyLength) as info:
        decode_frame(data)
    assert info.value.frame_type == 0x25
    assert info.value.seq == b"\x01\x00"
