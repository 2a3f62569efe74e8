"""One frozen dataclass per YKC v1.5/v1.6 frame type, and the type registry.

=====  =========================  =====  =====================================
Code   Class                      Dir    Module
=====  =========================  =====  =====================================
0x01   Login                      up     session
0x02   LoginReply                 down   session
0x03   Heartbeat                  up     session
0x04   HeartbeatReply             down   session
0x05   BillingModelVerify         up     billing
0x06   BillingModelVerifyReply    down   billing
0x09   BillingModelRequest        up     billing
0x0A   BillingModelReply          down   billing
0x12   ReadRealTimeData           down   realtime
0x13   RealTimeData               up     realtime
0x15   BmsHandshake               up     bms
0x17   BmsParameters              up     bms
0x19   ChargingEnd                up     bms
0x1B   ChargingError              up     bms
0x1D   BmsAbort                   up     bms
0x21   ChargerAbort               up     bms
0x23   BmsDemandOutput            up     bms
0x25   BmsInfo                    up     bms
0x31   ChargerStartRequest        up     charging
0x32   ChargerStartReply          down   charging
0x33   RemoteStartReply           up     charging
0x34   RemoteStart                down   charging
0x35   RemoteStopReply            up     charging
0x36   RemoteStop                 down   charging
0x3B   TransactionRecord          up     transaction
0x40   TransactionRecordConfirm   down   transaction
0x41   BalanceUpdateReply         up     transaction
0x42   BalanceUpdate              down   transaction
0x43   OfflineCardSyncReply       up     cards
0x44   OfflineCardSync            down   cards
0x45   OfflineCardClearReply      up     cards
0x46   OfflineCardClear           down   cards
0x47   OfflineCardQueryReply      up     cards
0x48   OfflineCardQuery           down   cards
0x51   WorkParamsSetReply         up     session
0x52   WorkParamsSet              down   session
0x55   TimeSyncReply              up     session
0x56   TimeSync                   down   session
0x57   BillingModelSetReply       up     billing
0x58   BillingModelSet            down   billing
0x61   ParkingLockStatus          up     parking
0x62   ParkingLockControl         down   parking
0x63   ParkingLockControlReply    up     parking
0x91   RemoteRebootReply          up     session
0x92   RemoteReboot               down   session
0x93   RemoteUpdateReply          up     session
0x94   RemoteUpdate               down   session
0xA1   ParallelStartRequest       up     charging
0xA2   ParallelStartReply         down   charging
0xA3   RemoteParallelStartReply   up     charging
0xA4   RemoteParallelStart        down   charging
=====  =========================  =====  =====================================
"""

from collections.abc import Mapping
from types import MappingProxyType

from .base import Direction, Message
from .billing import (
    BillingModel,
    BillingModelReply,
    BillingModelRequest,
    BillingModelSet,
    BillingModelSetReply,
    BillingModelVerify,
    BillingModelVerifyReply,
    TierRate,
)
from .bms import (
    BmsAbort,
    BmsDemandOutput,
    BmsHandshake,
    BmsInfo,
    BmsParameters,
    ChargerAbort,
    ChargingEnd,
    ChargingError,
    two_bit_fields,
)
from .cards import (
    CardClearResult,
    CardQueryResult,
    OfflineCard,
    OfflineCardClear,
    OfflineCardClearReply,
    OfflineCardQuery,
    OfflineCardQueryReply,
    OfflineCardSync,
    OfflineCardSyncReply,
)
from .charging import (
    ChargerStartReply,
    ChargerStartRequest,
    ParallelStartReply,
    ParallelStartRequest,
    RemoteParallelStart,
    RemoteParallelStartReply,
    RemoteStart,
    RemoteStartReply,
    RemoteStop,
    RemoteStopReply,
)
from .parking import ParkingLockControl, ParkingLockControlReply, ParkingLockStatus
from .realtime import ReadRealTimeData, RealTimeData
from .session import (
    Heartbeat,
    HeartbeatReply,
    Login,
    LoginReply,
    RemoteReboot,
    RemoteRebootReply,
    RemoteUpdate,
    RemoteUpdateReply,
    TimeSync,
    TimeSyncReply,
    WorkParamsSet,
    WorkParamsSetReply,
)
from .transaction import (
    BalanceUpdate,
    BalanceUpdateReply,
    TierUsage,
    TransactionRecord,
    TransactionRecordConfirm,
)

__all__ = [
    "MESSAGE_TYPES",
    "BalanceUpdate",
    "BalanceUpdateReply",
    "BillingModel",
    "BillingModelReply",
    "BillingModelRequest",
    "BillingModelSet",
    "BillingModelSetReply",
    "BillingModelVerify",
    "BillingModelVerifyReply",
    "BmsAbort",
    "BmsDemandOutput",
    "BmsHandshake",
    "BmsInfo",
    "BmsParameters",
    "CardClearResult",
    "CardQueryResult",
    "ChargerAbort",
    "ChargerStartReply",
    "ChargerStartRequest",
    "ChargingEnd",
    "ChargingError",
    "Direction",
    "Heartbeat",
    "HeartbeatReply",
    "Login",
    "LoginReply",
    "Message",
    "OfflineCard",
    "OfflineCardClear",
    "OfflineCardClearReply",
    "OfflineCardQuery",
    "OfflineCardQueryReply",
    "OfflineCardSync",
    "OfflineCardSyncReply",
    "ParallelStartReply",
    "ParallelStartRequest",
    "ParkingLockControl",
    "ParkingLockControlReply",
    "ParkingLockStatus",
    "ReadRealTimeData",
    "RealTimeData",
    "RemoteParallelStart",
    "RemoteParallelStartReply",
    "RemoteReboot",
    "RemoteRebootReply",
    "RemoteStart",
    "RemoteStartReply",
    "RemoteStop",
    "RemoteStopReply",
    "RemoteUpdate",
    "RemoteUpdateReply",
    "TierRate",
    "TierUsage",
    "TimeSync",
    "TimeSyncReply",
    "TransactionRecord",
    "TransactionRecordConfirm",
    "WorkParamsSet",
    "WorkParamsSetReply",
    "two_bit_fields",
]

_ALL: tuple[type[Message], ...] = (
    Login,
    LoginReply,
    Heartbeat,
    HeartbeatReply,
    BillingModelVerify,
    BillingModelVerifyReply,
    BillingModelRequest,
    BillingModelReply,
    ReadRealTimeData,
    RealTimeData,
    BmsHandshake,
    BmsParameters,
    ChargingEnd,
    ChargingError,
    BmsAbort,
    ChargerAbort,
    BmsDemandOutput,
    BmsInfo,
    ChargerStartRequest,
    ChargerStartReply,
    RemoteStartReply,
    RemoteStart,
    RemoteStopReply,
    RemoteStop,
    TransactionRecord,
    TransactionRecordConfirm,
    BalanceUpdateReply,
    BalanceUpdate,
    OfflineCardSyncReply,
    OfflineCardSync,
    OfflineCardClearReply,
    OfflineCardClear,
    OfflineCardQueryReply,
    OfflineCardQuery,
    WorkParamsSetReply,
    WorkParamsSet,
    TimeSyncReply,
    TimeSync,
    BillingModelSetReply,
    BillingModelSet,
    ParkingLockStatus,
    ParkingLockControl,
    ParkingLockControlReply,
    RemoteRebootReply,
    RemoteReboot,
    RemoteUpdateReply,
    RemoteUpdate,
    ParallelStartRequest,
    ParallelStartReply,
    RemoteParallelStartReply,
    RemoteParallelStart,
)


def _build_registry() -> Mapping[int, type[Message]]:
    registry: dict[int, type[Message]] = {}
    for cls in _ALL:
        if cls.FRAME_TYPE in registry:
            raise RuntimeError(f"duplicate YKC frame type 0x{cls.FRAME_TYPE:02X}")
        expected = Direction.UP if cls.FRAME_TYPE % 2 else Direction.DOWN
        if cls.DIRECTION is not expected:
            raise RuntimeError(f"{cls.__name__}: direction breaks the odd/even rule")
        registry[cls.FRAME_TYPE] = cls
    return MappingProxyType(registry)


MESSAGE_TYPES: Mapping[int, type[Message]] = _build_registry()
"""Frame type code → body dataclass, for every frame of YKC v1.5/v1.6."""
