"""GB/T 27930 BMS pass-through frames, charger → platform (0x15-0x25).

All start with the same 24-byte prefix ``trade_no(BCD16) pile_code(BCD7) gun(BCD1)``.
BMS currents use 0.1 A/bit with a −400 A offset (suffix ``_a1_off400``),
temperatures °C + 50 (suffix ``_c_off50``).
"""

from dataclasses import dataclass
from typing import Annotated, ClassVar

from ..fields import U8, U16, U24, U32, Ascii, Gun, PileCode, Raw, TradeNo
from .base import Direction, Message

__all__ = [
    "BmsAbort",
    "BmsDemandOutput",
    "BmsHandshake",
    "BmsInfo",
    "BmsParameters",
    "ChargerAbort",
    "ChargingEnd",
    "ChargingError",
    "two_bit_fields",
]


def two_bit_fields(value: int, count: int) -> tuple[int, ...]:
    """Split ``value`` into ``count`` 2-bit fields, least significant first.

    The spec numbers bits from 1 = LSB, so field ``i`` is bits ``2i+1..2i+2``
    (e.g. 0x1D reason: fields SOC target, total voltage, cell voltage, charger stop).
    """
    return tuple((value >> (2 * index)) & 0b11 for index in range(count))


@dataclass(frozen=True)
class _BmsPrefix(Message):
    DIRECTION: ClassVar[Direction] = Direction.UP

    trade_no: TradeNo
    pile_code: PileCode
    gun: Gun


@dataclass(frozen=True)
class BmsHandshake(_BmsPrefix):
    """0x15 charging handshake (BHM/BRM), 73 bytes::

        prefix(24) bms_protocol_version(3) battery_type(1) rated_capacity_ah1(2)
        rated_voltage_v1(2) manufacturer(ASCII4) pack_serial(4)
        production_year_off1985(1) production_month(1) production_day(1)
        cycle_count(3) ownership(1) reserved(1) vin(ASCII17) bms_software_version(8)

    ``battery_type``: 01 lead-acid … 03 LFP, 06 NCM, 08 LTO, FF other;
    ``ownership``: 0 leased, 1 owned. Version fields are kept as opaque bytes.
    """

    FRAME_TYPE: ClassVar[int] = 0x15

    bms_protocol_version: Annotated[bytes, Raw(3)]
    battery_type: U8
    rated_capacity_ah1: U16
    rated_voltage_v1: U16
    manufacturer: Annotated[str, Ascii(4)]
    pack_serial: U32
    production_year_off1985: U8
    production_month: U8
    production_day: U8
    cycle_count: U24
    ownership: U8
    reserved: U8
    vin: Annotated[str, Ascii(17)]
    bms_software_version: Annotated[bytes, Raw(8)]


@dataclass(frozen=True)
class BmsParameters(_BmsPrefix):
    """0x17 BMS parameter configuration (BCP/CML), 45 bytes::

        prefix(24) max_cell_voltage_v2(2) max_charge_current_a1_off400(2)
        nominal_energy_kwh1(2) max_total_voltage_v1(2) max_temp_c_off50(1)
        soc_pct1(2) pack_voltage_v1(2) charger_max_voltage_v1(2)
        charger_min_voltage_v1(2) charger_max_current_a1_off400(2)
        charger_min_current_a1_off400(2)

    BMS currents: 0.1 A/bit, −400 A offset.
    """

    FRAME_TYPE: ClassVar[int] = 0x17

    max_cell_voltage_v2: U16
    max_charge_current_a1_off400: U16
    nominal_energy_kwh1: U16
    max_total_voltage_v1: U16
    max_temp_c_off50: U8
    soc_pct1: U16
    pack_voltage_v1: U16
    charger_max_voltage_v1: U16
    charger_min_voltage_v1: U16
    charger_max_current_a1_off400: U16
    charger_min_current_a1_off400: U16


@dataclass(frozen=True)
class ChargingEnd(_BmsPrefix):
    """0x19 charging end (BSD/CSD), 39 bytes::

        prefix(24) final_soc_pct(1) min_cell_voltage_v2(2) max_cell_voltage_v2(2)
        min_battery_temp_c_off50(1) max_battery_temp_c_off50(1) charge_min(2)
        output_energy_kwh1(2) charger_id(4)

    ``charger_id`` is an opaque BIN number.
    """

    FRAME_TYPE: ClassVar[int] = 0x19

    final_soc_pct: U8
    min_cell_voltage_v2: U16
    max_cell_voltage_v2: U16
    min_battery_temp_c_off50: U8
    max_battery_temp_c_off50: U8
    charge_min: U16
    output_energy_kwh1: U16
    charger_id: U32


@dataclass(frozen=True)
class ChargingError(_BmsPrefix):
    """0x1B BMS/charger error frame (BEM/CEM), 32 bytes::

        prefix(24) flags(8)

    ``flags`` holds 2-bit timeout fields (00 normal, 01 timeout, 10 untrusted),
    LSB first within each byte, per the spec table: byte 0 CRM 0x00 / CRM 0xAA;
    byte 1 CML / CRO; byte 2 CCS / CST; byte 3 CSD + 6 bits other; byte 4 BRM;
    byte 5 BCP / BRO; byte 6 BCS / BCL / BST; byte 7 BSD + 6 bits other.
    Use :func:`two_bit_fields` on a byte to split it.
    """

    FRAME_TYPE: ClassVar[int] = 0x1B

    flags: Annotated[bytes, Raw(8)]


@dataclass(frozen=True)
class _AbortBody(_BmsPrefix):
    reason: U8
    fault_reason: U16
    error_reason: U8


@dataclass(frozen=True)
class BmsAbort(_AbortBody):
    """0x1D BMS abort during charging (BST), 28 bytes::

        prefix(24) reason(1) fault_reason(2) error_reason(1)

    2-bit fields (see :func:`two_bit_fields`): ``reason`` SOC target, total
    voltage, cell voltage, charger stop; ``fault_reason`` insulation, connector
    over-temp, BMS element over-temp, connector fault, pack over-temp, HV relay,
    CC2 voltage, other; ``error_reason`` over-current, voltage abnormal.
    """

    FRAME_TYPE: ClassVar[int] = 0x1D


@dataclass(frozen=True)
class ChargerAbort(_AbortBody):
    """0x21 charger abort during charging (CST), 28 bytes::

        prefix(24) reason(1) fault_reason(2) error_reason(1)

    2-bit fields: ``reason`` condition reached, manual, fault, BMS stop;
    ``fault_reason`` charger over-temp, connector, internal over-temp, energy
    cannot be delivered, E-stop, other; ``error_reason`` current mismatch, voltage.
    """

    FRAME_TYPE: ClassVar[int] = 0x21


@dataclass(frozen=True)
class BmsDemandOutput(_BmsPrefix):
    """0x23 BMS demand and charger output (BCL/BCS/CCS), every 15 s, 44 bytes::

        prefix(24) demand_voltage_v1(2) demand_current_a1_off400(2) charge_mode(1)
        measured_voltage_v1(2) measured_current_a1_off400(2)
        max_cell_voltage_group(2) soc_pct(1) remaining_min(2)
        output_voltage_v1(2) output_current_a1_off400(2) charged_min(2)

    ``charge_mode``: 1 constant voltage, 2 constant current.
    ``max_cell_voltage_group`` is kept raw: bits 0-11 cell voltage (0.01 V),
    bits 12-15 group number (see the two properties).
    """

    FRAME_TYPE: ClassVar[int] = 0x23

    demand_voltage_v1: U16
    demand_current_a1_off400: U16
    charge_mode: U8
    measured_voltage_v1: U16
    measured_current_a1_off400: U16
    max_cell_voltage_group: U16
    soc_pct: U8
    remaining_min: U16
    output_voltage_v1: U16
    output_current_a1_off400: U16
    charged_min: U16

    @property
    def max_cell_voltage_v2(self) -> int:
        """Highest cell voltage in 0.01 V (bits 0-11)."""
        return self.max_cell_voltage_group & 0x0FFF

    @property
    def max_cell_group(self) -> int:
        """Group number of the highest cell (bits 12-15)."""
        return self.max_cell_voltage_group >> 12


@dataclass(frozen=True)
class BmsInfo(_BmsPrefix):
    """0x25 BMS information (BSM), every 15 s, 31 bytes::

        prefix(24) max_cell_voltage_index(1) max_battery_temp_c_off50(1)
        max_temp_probe(1) min_battery_temp_c_off50(1) min_temp_probe(1)
        status_flags(2)

    ``status_flags``: 2-bit fields LSB first (see :func:`two_bit_fields`):
    cell voltage high/low, SOC high/low, over-current, over-temperature,
    insulation, output connector, charging allowed (00 forbidden, 01 allowed).
    """

    FRAME_TYPE: ClassVar[int] = 0x25

    max_cell_voltage_index: U8
    max_battery_temp_c_off50: U8
    max_temp_probe: U8
    min_battery_temp_c_off50: U8
    min_temp_probe: U8
    status_flags: U16
