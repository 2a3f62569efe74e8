"""Every frame type: registry coverage, body sizes, hand-written examples, encode validation."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from bridges.ykc import (
    MESSAGE_TYPES,
    BadBodyLength,
    BalanceUpdate,
    BalanceUpdateReply,
    BillingModelSetReply,
    BmsAbort,
    BmsDemandOutput,
    BmsHandshake,
    BmsInfo,
    BmsParameters,
    CardClearResult,
    CardQueryResult,
    ChargerAbort,
    ChargerStartReply,
    ChargerStartRequest,
    ChargingEnd,
    ChargingError,
    Cp56Time2a,
    Direction,
    EncodeError,
    Message,
    OfflineCard,
    OfflineCardClear,
    OfflineCardClearReply,
    OfflineCardQuery,
    OfflineCardQueryReply,
    OfflineCardSync,
    OfflineCardSyncReply,
    ParallelStartReply,
    ParallelStartRequest,
    ParkingLockControl,
    ParkingLockControlReply,
    ParkingLockStatus,
    ReadRealTimeData,
    RemoteParallelStart,
    RemoteParallelStartReply,
    RemoteReboot,
    RemoteRebootReply,
    RemoteStopReply,
    RemoteUpdate,
    RemoteUpdateReply,
    TimeSyncReply,
    WorkParamsSet,
    WorkParamsSetReply,
    decode_body,
    decode_frame,
    encode_body,
    encode_frame,
)
from bridges.ykc.constants import LockAction, StartMode
from bridges.ykc.fields import struct_size
from bridges.ykc.messages import two_bit_fields
from bridges.ykc.units import A1_OFF400, V2, unit_values

# Body sizes from the frame-type table (§3); None = variable length.
EXPECTED_BODY_SIZES: dict[int, int | None] = {
    0x01: 30, 0x02: 8, 0x03: 9, 0x04: 9, 0x05: 9, 0x06: 10, 0x09: 7, 0x0A: 90,
    0x12: 8, 0x13: 60, 0x15: 73, 0x17: 45, 0x19: 39, 0x1B: 32, 0x1D: 28, 0x21: 28,
    0x23: 44, 0x25: 31, 0x31: 51, 0x32: 38, 0x33: 26, 0x34: 44, 0x35: 10, 0x36: 8,
    0x3B: 158, 0x40: 17, 0x41: 16, 0x42: 20, 0x43: 9, 0x44: None, 0x45: None,
    0x46: None, 0x47: None, 0x48: None, 0x51: 8, 0x52: 9, 0x55: 14, 0x56: 14,
    0x57: 8, 0x58: 90, 0x61: 16, 0x62: 13, 0x63: 13, 0x91: 8, 0x92: 8, 0x93: 8,
    0x94: 94, 0xA1: 58, 0xA2: 44, 0xA3: 33, 0xA4: 50,
}  # fmt: skip


def test_registry_covers_every_frame_of_the_reference() -> None:
    assert set(MESSAGE_TYPES) == set(EXPECTED_BODY_SIZES)
    for code, cls in MESSAGE_TYPES.items():
        assert code == cls.FRAME_TYPE
        assert struct_size(cls) == EXPECTED_BODY_SIZES[code], cls.__name__
        assert cls.DIRECTION is (Direction.UP if code % 2 else Direction.DOWN)


PILE = "55031412782305"
TRADE = "55031412782305012018061914444680"
WHEN = Cp56Time2a.from_datetime(datetime.fromisoformat("2024-01-02T03:04:05.678"))

EXAMPLES: list[Message] = [
    ReadRealTimeData(PILE, 2),
    BmsHandshake(TRADE, PILE, 1, b"\x01\x01\x00", 3, 1500, 3500, "CATL", 7, 38, 6, 1, 120,
                 1, 0, "LSVAA4182E2184841", b"\xff" * 8),
    BmsParameters(TRADE, PILE, 1, 420, 1500, 600, 4500, 95, 456, 3700, 7500, 2000, 2500, 4000),
    ChargingEnd(TRADE, PILE, 1, 98, 410, 415, 70, 80, 45, 321, 1),
    ChargingError(TRADE, PILE, 1, bytes([0b01, 0, 0b10, 0, 0, 0, 0, 0])),
    BmsAbort(TRADE, PILE, 1, 0b01, 0x0100, 0),
    ChargerAbort(TRADE, PILE, 1, 0b0100, 0, 0b10),
    BmsDemandOutput(TRADE, PILE, 1, 4000, 3000, 2, 3990, 2990, (3 << 12) | 412, 55, 30,
                    3995, 2995, 12),
    BmsInfo(TRADE, PILE, 1, 12, 80, 3, 75, 9, 0b01 << 12),
    ChargerStartRequest(PILE, 1, StartMode.VIN, 0, "0" * 16, bytes(16), "LSVAA4182E2184841"),
    ChargerStartReply(TRADE, PILE, 1, "0000001000000573", 12345, 1, 0),
    RemoteStopReply(PILE, 1, 1, 0),
    BalanceUpdate(PILE, 1, "00000000D14B0A54", 50000),
    BalanceUpdateReply(PILE, "00000000D14B0A54", 0),
    OfflineCardSync(PILE, (OfflineCard("0000001000000573", "00000000D14B0A54"),)),
    OfflineCardSyncReply(PILE, 1, 0),
    OfflineCardClear(PILE, ("00000000D14B0A54", "0000000012345678")),
    OfflineCardClearReply(PILE, (CardClearResult("00000000D14B0A54", 1, 0),)),
    OfflineCardQuery(PILE, ()),
    OfflineCardQueryReply(PILE, (CardQueryResult("00000000D14B0A54", 1),)),
    WorkParamsSet(PILE, 0, 80),
    WorkParamsSetReply(PILE, 1),
    TimeSyncReply(PILE, WHEN),
    BillingModelSetReply(PILE, 1),
    ParkingLockStatus(PILE, 1, 0x55, 0xFF, 87, 0),
    ParkingLockControl(PILE, 1, LockAction.LOWER),
    ParkingLockControlReply(PILE, 1, 1),
    RemoteReboot(PILE, 1),
    RemoteRebootReply(PILE, 1),
    RemoteUpdate(PILE, 1, 120, "192.168.1.10", 21, "ftp", "secret", "/fw/pile.bin", 2, 10),
    RemoteUpdateReply(PILE, 0),
    ParallelStartRequest(PILE, 1, 1, 0, "00000000D14B0A54", bytes(16), "", 0, "201029112801"),
    ParallelStartReply(TRADE, PILE, 1, "0000001000000573", 0, 0, 1, "201029112801"),
    RemoteParallelStartReply(TRADE, PILE, 1, 1, 0, 1, "201029112801"),
    RemoteParallelStart(TRADE, PILE, 1, "0000001000000573", "00000000D14B0A54", 100000,
                        "201029112801"),
]  # fmt: skip


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_hand_written_examples_round_trip(message: Message) -> None:
    wire = encode_frame(message, 0x1234)
    assert wire[2:4] == b"\x12\x34"
    assert decode_frame(wire)[0].message == message


def test_vin_is_reversed_on_the_wire_in_0x31_only() -> None:
    vin = "LSVAA4182E2184841"
    start = ChargerStartRequest(PILE, 1, StartMode.VIN, 0, "0" * 16, bytes(16), vin)
    assert encode_body(start)[-17:] == vin.encode()[::-1]
    handshake = next(m for m in EXAMPLES if isinstance(m, BmsHandshake))
    assert vin.encode() in encode_body(handshake)


def test_parallel_start_request_layout_matches_spec_sample() -> None:
    # 0xA1 sample of the spec transcription (CRC placeholder omitted): body only
    body = bytes.fromhex(
        "3201020000000101010000000000D14B0A54" + "00" * 16 + "00" * 17 + "00201029112801"
    )
    message = decode_body(0xA1, body)
    assert message == ParallelStartRequest(
        "32010200000001", 1, StartMode.CARD, 0, "00000000D14B0A54", bytes(16), "", 0,
        "201029112801",
    )  # fmt: skip


def test_bms_helpers() -> None:
    demand = next(m for m in EXAMPLES if isinstance(m, BmsDemandOutput))
    assert demand.max_cell_voltage_v2 == 412
    assert demand.max_cell_group == 3
    assert V2.to_unit(demand.max_cell_voltage_v2) == Decimal("4.12")
    assert A1_OFF400.to_unit(demand.demand_current_a1_off400) == Decimal(-100)
    assert unit_values(demand)["demand_current_a"] == Decimal(-100)
    assert two_bit_fields(0b10_01_00_11, 4) == (0b11, 0b00, 0b01, 0b10)


def test_counted_lists_reject_mismatching_counts() -> None:
    body = bytes.fromhex(PILE) + b"\x02" + bytes(16)  # claims 2 cards, carries 1
    with pytest.raises(BadBodyLength):
        decode_body(0x44, body)
    with pytest.raises(BadBodyLength):
        decode_body(0x45, bytes.fromhex(PILE) + bytes(9))  # entries are 10 bytes


@pytest.mark.parametrize(
    "message",
    [
        OfflineCardSync(PILE, (OfflineCard("0" * 16, "0" * 16),) * 16),
        OfflineCardClear(PILE, ("0" * 16,) * 25),
        OfflineCardQuery(PILE, ("0" * 16,) * 27),
    ],
    ids=["sync>15", "clear>24", "query>26"],
)
def test_card_list_limits_enforced_on_encode(message: Message) -> None:
    with pytest.raises(EncodeError):
        encode_frame(message)


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (ReadRealTimeData("123456789012345", 1), "pile_code"),  # 15 digits
        (ReadRealTimeData("1234567890123X", 1), "pile_code"),
        (ReadRealTimeData(PILE, 100), "gun"),
        (ReadRealTimeData(PILE, -1), "gun"),
        (WorkParamsSet(PILE, 256, 0), "disabled"),
        (WorkParamsSet(PILE, True, 0), "disabled"),
        (WorkParamsSetReply(PILE, "1"), "result"),  # type: ignore[arg-type]
        (RemoteUpdate(PILE, 1, 1, "x" * 17, 21, "", "", "", 1, 1), "server_address"),
        (RemoteUpdate(PILE, 1, 1, "ftp.例.cn", 21, "", "", "", 1, 1), "server_address"),
        (ChargingError(TRADE, PILE, 1, bytes(7)), "flags"),
        (ParkingLockStatus(PILE, 1, 0, 0, 0, 0, reserved=b"x"), "reserved"),
        (TimeSyncReply(PILE, WHEN.__class__(1999, 1, 1, 0, 0, 0)), "year"),
        (OfflineCardQuery(PILE, ["0" * 16]), None),  # type: ignore[arg-type]  # list accepted
    ],
)
def test_encode_validation(message: Message, field: str | None) -> None:
    if field is None:
        assert decode_frame(encode_frame(message))[0].message == OfflineCardQuery(PILE, ("0" * 16,))
        return
    with pytest.raises(EncodeError, match=field):
        encode_frame(message)


def test_encode_rejects_foreign_objects_and_bad_seq() -> None:
    with pytest.raises(EncodeError):
        encode_body(object())  # type: ignore[arg-type]
    for seq in (b"\x00", b"\x00\x00\x00", -1, 65536, True):
        with pytest.raises(EncodeError):
            encode_frame(RemoteReboot(PILE, 1), seq)
