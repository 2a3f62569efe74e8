"""Named values of YKC enumerated fields.

Frame dataclasses keep such fields as plain ``int`` so that vendor-specific or
future values still decode; compare them with these ``IntEnum`` members or wrap
them (``ConnectorStatus(frame.status)``) where an unknown value should fail.
"""

from __future__ import annotations

import enum

__all__ = [
    "AuthFailReason",
    "Carrier",
    "ChargeMode",
    "ConnectorStatus",
    "ExecuteWhen",
    "GunRole",
    "GunStatus",
    "HardwareFault",
    "Holstered",
    "LockAction",
    "LockAlarm",
    "LockPosition",
    "LoginResult",
    "ModelVerifyResult",
    "NetworkType",
    "OtaPileModel",
    "OtaStatus",
    "PileType",
    "ProtocolVersion",
    "RemoteStartFailReason",
    "RemoteStopFailReason",
    "SpaceState",
    "StartMode",
    "StopReason",
    "StopReasonCategory",
    "Tier",
    "TradeFlag",
    "TransactionConfirmResult",
    "stop_reason_category",
]


class ProtocolVersion(enum.IntEnum):
    """Login field 4: version × 10."""

    V1_5 = 0x0F
    V1_6 = 0x10


class PileType(enum.IntEnum):
    """Login (0x01) pile type. Note OTA (0x94) uses :class:`OtaPileModel` instead."""

    DC = 0
    AC = 1


class NetworkType(enum.IntEnum):
    SIM = 0
    LAN = 1
    WAN = 2
    OTHER = 3


class Carrier(enum.IntEnum):
    """Login carrier byte per the vendor spec (some implementations use 0/1/2)."""

    CHINA_MOBILE = 0
    CHINA_TELECOM = 2
    CHINA_UNICOM = 3
    OTHER = 4


class LoginResult(enum.IntEnum):
    """0x02 result."""

    SUCCESS = 0
    FAILURE = 1


class GunStatus(enum.IntEnum):
    """0x03 gun status."""

    NORMAL = 0
    FAULT = 1


class ModelVerifyResult(enum.IntEnum):
    """0x06 result."""

    MATCH = 0
    MISMATCH = 1


class Tier(enum.IntEnum):
    """Billing tier index used in the 48 half-hour slots of 0x0A/0x58."""

    TIP = 0  # 尖
    PEAK = 1  # 峰
    FLAT = 2  # 平
    VALLEY = 3  # 谷


class ConnectorStatus(enum.IntEnum):
    """0x13 status."""

    OFFLINE = 0
    FAULT = 1
    IDLE = 2
    CHARGING = 3


class Holstered(enum.IntEnum):
    """0x13 gun returned to holster."""

    NO = 0
    YES = 1
    UNKNOWN = 2


class HardwareFault(enum.IntFlag):
    """0x13 hardware-fault bits (bit 1 of the spec = LSB of the first byte)."""

    EMERGENCY_STOP = 1 << 0
    NO_RECTIFIER_MODULE = 1 << 1
    AIR_OUTLET_OVER_TEMPERATURE = 1 << 2
    AC_SURGE_PROTECTOR = 1 << 3
    DC20_COMMS_LOST = 1 << 4
    FC08_INSULATION_MONITOR_COMMS_LOST = 1 << 5
    METER_COMMS_LOST = 1 << 6
    CARD_READER_COMMS_LOST = 1 << 7
    RC10_COMMS_LOST = 1 << 8
    FAN_SPEED_BOARD = 1 << 9
    DC_FUSE = 1 << 10
    HV_CONTACTOR = 1 << 11
    DOOR_OPEN = 1 << 12


class ChargeMode(enum.IntEnum):
    """0x23 BMS charge mode."""

    CONSTANT_VOLTAGE = 1
    CONSTANT_CURRENT = 2


class StartMode(enum.IntEnum):
    """0x31 / 0xA1 start mode."""

    CARD = 1
    ACCOUNT = 2
    VIN = 3


class AuthFailReason(enum.IntEnum):
    """0x32 / 0xA2 failure reason (typed BCD in the spec, values are BIN)."""

    NONE = 0x00
    ACCOUNT_NOT_FOUND = 0x01
    ACCOUNT_FROZEN = 0x02
    INSUFFICIENT_BALANCE = 0x03
    CARD_HAS_UNSETTLED_ORDER = 0x04
    PILE_DISABLED = 0x05
    ACCOUNT_NOT_ALLOWED_ON_PILE = 0x06
    WRONG_PASSWORD = 0x07
    STATION_CAPACITY_INSUFFICIENT = 0x08
    VIN_UNKNOWN = 0x09
    PILE_HAS_UNSETTLED_ORDER = 0x0A
    PILE_DOES_NOT_ACCEPT_CARDS = 0x0B


class RemoteStartFailReason(enum.IntEnum):
    """0x33 / 0xA3 failure reason."""

    NONE = 0
    PILE_CODE_MISMATCH = 1
    GUN_ALREADY_CHARGING = 2
    FAULT = 3
    OFFLINE = 4
    NOT_PLUGGED = 5


class RemoteStopFailReason(enum.IntEnum):
    """0x35 failure reason."""

    NONE = 0
    PILE_CODE_MISMATCH = 1
    GUN_NOT_CHARGING = 2
    OTHER = 3


class GunRole(enum.IntEnum):
    """0xA1 / 0xA3 master/slave gun flag."""

    MASTER = 0
    SLAVE = 1


class TradeFlag(enum.IntEnum):
    """0x3B trade flag."""

    APP = 0x01
    CARD = 0x02
    OFFLINE_CARD = 0x04
    VIN = 0x05


class TransactionConfirmResult(enum.IntEnum):
    """0x40 result."""

    ACCEPTED = 0
    ILLEGAL_BILL = 1


class StopReason(enum.IntEnum):
    """0x3B stop reasons with an unambiguous name; see :func:`stop_reason_category`."""

    APP_REMOTE_STOP = 0x40
    SOC_FULL = 0x41
    ENERGY_TARGET_REACHED = 0x42
    AMOUNT_TARGET_REACHED = 0x43
    TIME_TARGET_REACHED = 0x44
    MANUAL_STOP = 0x45
    START_CONTROL_SYSTEM_FAULT = 0x4A
    START_PILOT_DISCONNECTED = 0x4B
    START_BREAKER_TRIPPED = 0x4C
    START_METER_COMMS = 0x4D
    START_INSUFFICIENT_BALANCE = 0x4E
    START_MODULE_FAULT = 0x4F
    START_EMERGENCY_STOP = 0x50
    START_SURGE_PROTECTOR = 0x51
    START_BMS_NOT_READY = 0x52
    START_TEMPERATURE = 0x53
    START_BATTERY_REVERSED = 0x54
    START_ELECTRONIC_LOCK = 0x55
    START_CONTACTOR_CLOSE_FAILED = 0x56
    START_INSULATION = 0x57
    START_BHM_TIMEOUT = 0x59
    START_BRM_TIMEOUT = 0x5A
    START_BCP_TIMEOUT = 0x5B
    START_BRO_TIMEOUT = 0x5C
    START_BCS_TIMEOUT = 0x5D
    START_BCL_TIMEOUT = 0x5E
    START_BSM_TIMEOUT = 0x5F
    UNKNOWN = 0x90


class StopReasonCategory(enum.Enum):
    NORMAL = "normal"
    START_FAILED = "start_failed"
    ABNORMAL = "abnormal"
    UNKNOWN = "unknown"


def stop_reason_category(code: int) -> StopReasonCategory:
    """Classify a 0x3B stop-reason code by the spec's ranges."""
    if 0x40 <= code <= 0x49:
        return StopReasonCategory.NORMAL
    if 0x4A <= code <= 0x69:
        return StopReasonCategory.START_FAILED
    if 0x6A <= code <= 0x8F:
        return StopReasonCategory.ABNORMAL
    return StopReasonCategory.UNKNOWN


class LockPosition(enum.IntEnum):
    """0x61 lock position."""

    MOVING = 0x00
    RAISED = 0x55
    LOWERED = 0xFF


class SpaceState(enum.IntEnum):
    """0x61 parking-space state."""

    EMPTY = 0x00
    OCCUPIED = 0xFF


class LockAlarm(enum.IntEnum):
    """0x61 alarm."""

    NONE = 0x00
    ARM_STUCK = 0x55
    ARM_DAMAGED = 0xFF


class LockAction(enum.IntEnum):
    """0x62 action."""

    RAISE = 0x55
    LOWER = 0xFF


class ExecuteWhen(enum.IntEnum):
    """0x92 / 0x94 execution control."""

    NOW = 0x01
    WHEN_IDLE = 0x02


class OtaPileModel(enum.IntEnum):
    """0x94 pile model (different coding from the login pile type)."""

    DC = 0x01
    AC = 0x02


class OtaStatus(enum.IntEnum):
    """0x93 status."""

    OK = 0
    WRONG_PILE_CODE = 1
    FIRMWARE_MODEL_MISMATCH = 2
    DOWNLOAD_TIMEOUT = 3
