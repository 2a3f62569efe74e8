"""Transaction record 0x3B / confirm 0x40 and balance update 0x42 / reply 0x41."""

from dataclasses import dataclass
from typing import Annotated, ClassVar

from ..fields import (
    U8,
    U32,
    U40,
    Array,
    Ascii,
    Card,
    Cp56,
    Gun,
    PileCode,
    Struct,
    TradeNo,
)
from .base import Direction, Message

__all__ = [
    "BalanceUpdate",
    "BalanceUpdateReply",
    "TierUsage",
    "TransactionRecord",
    "TransactionRecordConfirm",
]


@dataclass(frozen=True)
class TierUsage:
    """Per-tier usage in a transaction record (16 bytes)::

        price_yuan5(4) energy_kwh4(4) loss_energy_kwh4(4) amount_yuan4(4)

    ``price_yuan5`` is the combined unit price (electricity + service) in
    0.00001 yuan/kWh; energies 0.0001 kWh; amount 0.0001 yuan.
    """

    price_yuan5: U32
    energy_kwh4: U32
    loss_energy_kwh4: U32
    amount_yuan4: U32


@dataclass(frozen=True)
class TransactionRecord(Message):
    """0x3B 交易记录, charger → platform, 158 bytes::

        trade_no(BCD16) pile_code(BCD7) gun(BCD1) start_time(CP56) end_time(CP56)
        tiers[4] (tip, peak, flat, valley) × TierUsage(16)
        meter_start_kwh4(5) meter_end_kwh4(5) total_energy_kwh4(4)
        total_loss_energy_kwh4(4) total_amount_yuan4(4) vin(ASCII17)
        trade_flag(1) trade_time(CP56) stop_reason(1) physical_card(BIN8)

    ``vin`` is in normal byte order here (unlike 0x31). ``trade_flag``:
    :class:`~bridges.ykc.constants.TradeFlag`; ``stop_reason``:
    :class:`~bridges.ykc.constants.StopReason` /
    :func:`~bridges.ykc.constants.stop_reason_category`.
    """

    FRAME_TYPE: ClassVar[int] = 0x3B
    DIRECTION: ClassVar[Direction] = Direction.UP

    trade_no: TradeNo
    pile_code: PileCode
    gun: Gun
    start_time: Cp56
    end_time: Cp56
    tiers: Annotated[tuple[TierUsage, ...], Array(Struct(TierUsage), 4)]
    meter_start_kwh4: U40
    meter_end_kwh4: U40
    total_energy_kwh4: U32
    total_loss_energy_kwh4: U32
    total_amount_yuan4: U32
    vin: Annotated[str, Ascii(17)]
    trade_flag: U8
    trade_time: Cp56
    stop_reason: U8
    physical_card: Card


@dataclass(frozen=True)
class TransactionRecordConfirm(Message):
    """0x40 transaction-record confirm, platform → charger, 17 bytes::

        trade_no(BCD16) result(1)

    ``result``: 0x00 accepted, 0x01 illegal bill.
    """

    FRAME_TYPE: ClassVar[int] = 0x40
    DIRECTION: ClassVar[Direction] = Direction.DOWN

    trade_no: TradeNo
    result: U8


@dataclass(frozen=True)
class BalanceUpdate(Message):
    """0x42 远程账户余额更新, platform → charger, 20 bytes::

        pile_code(BCD7) gun(BCD1) physical_card(BIN8) balance_yuan2(4)

    An all-zero ``physical_card`` updates the current session's user unconditionally.
    """

    FRAME_TYPE: ClassVar[int] = 0x42
    DIRECTION: ClassVar[Direction] = Direction.DOWN

    pile_code: PileCode
    gun: Gun
    physical_card: Card
    balance_yuan2: U32


@dataclass(frozen=True)
class BalanceUpdateReply(Message):
    """0x41 balance-update reply, charger → platform, 16 bytes::

        pile_code(BCD7) physical_card(BIN8) result(1)

    ``result``: 0 ok, 1 wrong pile code, 2 wrong card.
    """

    FRAME_TYPE: ClassVar[int] = 0x41
    DIRECTION: ClassVar[Direction] = Direction.UP

    pile_code: PileCode
    physical_card: Card
    result: U8
