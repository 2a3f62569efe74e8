"""Real-time monitoring frames (0x12 read request, 0x13 data)."""

from dataclasses import dataclass
from typing import ClassVar

from ..fields import U8, U16, U32, U64, Gun, PileCode, TradeNo
from .base import Direction, Message

__all__ = ["ReadRealTimeData", "RealTimeData"]


@dataclass(frozen=True)
class ReadRealTimeData(Message):
    """0x12 读取实时监测数据, platform → charger, 8 bytes (answered with 0x13)::

        pile_code(BCD7) gun(BCD1)

    The charger answers with 0x13.
    """

    FRAME_TYPE: ClassVar[int] = 0x12
    DIRECTION: ClassVar[Direction] = Direction.DOWN

    pile_code: PileCode
    gun: Gun


@dataclass(frozen=True)
class RealTimeData(Message):
    """0x13 上传实时监测数据, charger → platform, 60 bytes::

        trade_no(BCD16) pile_code(BCD7) gun(BCD1)
        status(1) gun_holstered(1) gun_plugged(1)
        output_voltage_v1(2) output_current_a1(2) cable_temp_c_off50(1) cable_code(8)
        soc_pct(1) battery_max_temp_c_off50(1) charged_min(2) remaining_min(2)
        energy_kwh4(4) loss_energy_kwh4(4) amount_yuan4(4) hardware_faults(2)

    ``trade_no`` is all zeros without a session. ``status``:
    :class:`~bridges.ykc.constants.ConnectorStatus`; ``gun_holstered``:
    :class:`~bridges.ykc.constants.Holstered`; ``gun_plugged``: 0 no, 1 yes.
    Voltage 0.1 V, current 0.1 A **without offset**, temperatures °C + 50, energies
    0.0001 kWh, amount 0.0001 yuan; SOC, battery temperature and remaining time
    are 0 on AC piles. ``hardware_faults``: :class:`~bridges.ykc.constants.HardwareFault`.
    """

    FRAME_TYPE: ClassVar[int] = 0x13
    DIRECTION: ClassVar[Direction] = Direction.UP

    trade_no: TradeNo
    pile_code: PileCode
    gun: Gun
    status: U8
    gun_holstered: U8
    gun_plugged: U8
    output_voltage_v1: U16
    output_current_a1: U16
    cable_temp_c_off50: U8
    cable_code: U64
    soc_pct: U8
    battery_max_temp_c_off50: U8
    charged_min: U16
    remaining_min: U16
    energy_kwh4: U32
    loss_energy_kwh4: U32
    amount_yuan4: U32
    hardware_faults: U16
