"""Sans-I/O codec for the YKC (云快充) v1.5 / v1.6 charger ⇄ platform TCP protocol.

Bytes in, typed frames out: no sockets, no clock, no logging. Wire reference:
``shared/protocols/ykc.md``.

Frame layout (see :mod:`bridges.ykc.frame`)::

    68 | L | seq(2) | enc(1) | type(1) | body(L-4) | crc(2)
              └──────── CRC-16/MODBUS input ───────┘   low byte first (either accepted)

Public API
==========

Decoding
    :func:`decode_frame` ``(data) -> (Frame, consumed)`` — one frame at the start of
    ``data``; :class:`StreamDecoder` ``.feed(chunk) -> list[Frame | FrameFailure]`` —
    a TCP stream with resynchronisation, never raises; :func:`decode_raw_frame`,
    :func:`decode_message`, :func:`decode_body` for the individual layers.
Encoding
    :func:`encode_frame` ``(message, seq=b"\\x00\\x00") -> bytes`` — ``seq`` is the raw
    2 bytes (echo ``frame.seq`` in replies) or an int written big-endian;
    :class:`SequenceCounter` for platform-initiated frames.
Frames
    One frozen dataclass per frame type in :mod:`bridges.ykc.messages` (table there),
    keyed by code in :data:`MESSAGE_TYPES`.
Helpers
    :mod:`~bridges.ykc.units` (exact Decimal conversions), :mod:`~bridges.ykc.tariff`
    (compile a tariff into a billing model), :mod:`~bridges.ykc.identifiers` (trade
    numbers), :mod:`~bridges.ykc.constants` (named enum values).

Field representation
====================

* Pile code, trade number, model code, card numbers, parallel id, ICCID: ``str`` of
  BCD digits (14 / 32 / 4 / 16 / 12 / 20 characters). BCD decoding is lenient —
  non-decimal nibbles come out as ``A``–``F`` — so odd firmware still decodes and
  re-encodes byte for byte. Physical card numbers are 8 BIN bytes written as
  16 uppercase hex characters (``00000000D14B0A54``). Encoding left-pads short values.
* Gun number: ``int`` (strict BCD).
* Scaled quantities: the raw wire ``int``; the field-name suffix gives the scale
  (``_v1`` = 0.1 V, ``_kwh4`` = 0.0001 kWh, ``_yuan5`` = 0.00001 yuan/kWh, ``_c_off50``
  = °C + 50, ...). Convert with the :mod:`~bridges.ykc.units` constants
  (``units.V1.to_unit(frame.output_voltage_v1) == Decimal("373.2")``) or
  :func:`~bridges.ykc.units.unit_values`.
* Enumerations: plain ``int`` (unknown vendor values still decode); compare with
  :mod:`~bridges.ykc.constants`.
* Timestamps: :class:`Cp56Time2a` (lossless; ``.to_datetime()`` gives naive local
  time or None for an invalid/zero stamp; ``Cp56Time2a.from_datetime(dt)``).
* Text (firmware, VIN, FTP fields): ``str``, 0x00 padding stripped, Latin-1 mapped.

Exceptions
==========

Everything raised derives from :class:`YkcError`; the decode functions raise
nothing else for any input bytes::

    YkcError
    ├── FrameError                 outer frame unusable (resynchronise)
    │   ├── IncompleteFrame        not enough bytes yet (.needed)
    │   ├── BadStart               not 0x68 / implausible header / garbage
    │   ├── BadLength              length byte < 4 or contradicted by the stream
    │   └── BadCrc                 checksum wrong in both byte orders
    ├── UnsupportedEncryption      intact frame with encryption flag != 0 (.flag)
    ├── UnknownFrameType           intact frame, code not in v1.5/v1.6
    ├── BodyError                  intact frame, body does not fit the layout
    │   └── BadBodyLength
    └── EncodeError (ValueError)   value not representable on the wire

Errors carry ``.frame_type`` and ``.seq`` when known.
"""

from .codec import Frame, decode_body, decode_frame, decode_message, encode_body, encode_frame
from .crc import crc16_modbus
from .encoding import Cp56Time2a
from .errors import (
    BadBodyLength,
    BadCrc,
    BadLength,
    BadStart,
    BodyError,
    EncodeError,
    FrameError,
    IncompleteFrame,
    UnknownFrameType,
    UnsupportedEncryption,
    YkcError,
)
from .frame import CrcOrder, RawFrame, decode_raw_frame, encode_raw_frame, seq_bytes
from .identifiers import (
    ZERO_TRADE_NO,
    SequenceCounter,
    TradeNoParts,
    build_parallel_id,
    build_trade_no,
    is_zero_trade_no,
    parse_trade_no,
)
from .messages import (
    MESSAGE_TYPES,
    BalanceUpdate,
    BalanceUpdateReply,
    BillingModel,
    BillingModelReply,
    BillingModelRequest,
    BillingModelSet,
    BillingModelSetReply,
    BillingModelVerify,
    BillingModelVerifyReply,
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
    Direction,
    Heartbeat,
    HeartbeatReply,
    Login,
    LoginReply,
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
    RealTimeData,
    RemoteParallelStart,
    RemoteParallelStartReply,
    RemoteReboot,
    RemoteRebootReply,
    RemoteStart,
    RemoteStartReply,
    RemoteStop,
    RemoteStopReply,
    RemoteUpdate,
    RemoteUpdateReply,
    TierRate,
    TierUsage,
    TimeSync,
    TimeSyncReply,
    TransactionRecord,
    TransactionRecordConfirm,
    WorkParamsSet,
    WorkParamsSetReply,
    two_bit_fields,
)
from .stream import DecodeResult, DecoderStats, FrameFailure, StreamDecoder
from .tariff import (
    TierPrice,
    billing_model_prices,
    compile_billing_model,
    model_code,
    slots_from_periods,
    tier_at,
)

__all__ = [
    "MESSAGE_TYPES",
    "ZERO_TRADE_NO",
    "BadBodyLength",
    "BadCrc",
    "BadLength",
    "BadStart",
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
    "BodyError",
    "CardClearResult",
    "CardQueryResult",
    "ChargerAbort",
    "ChargerStartReply",
    "ChargerStartRequest",
    "ChargingEnd",
    "ChargingError",
    "Cp56Time2a",
    "CrcOrder",
    "DecodeResult",
    "DecoderStats",
    "Direction",
    "EncodeError",
    "Frame",
    "FrameError",
    "FrameFailure",
    "Heartbeat",
    "HeartbeatReply",
    "IncompleteFrame",
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
    "RawFrame",
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
    "SequenceCounter",
    "StreamDecoder",
    "TierPrice",
    "TierRate",
    "TierUsage",
    "TimeSync",
    "TimeSyncReply",
    "TradeNoParts",
    "TransactionRecord",
    "TransactionRecordConfirm",
    "UnknownFrameType",
    "UnsupportedEncryption",
    "WorkParamsSet",
    "WorkParamsSetReply",
    "YkcError",
    "billing_model_prices",
    "build_parallel_id",
    "build_trade_no",
    "compile_billing_model",
    "crc16_modbus",
    "decode_body",
    "decode_frame",
    "decode_message",
    "decode_raw_frame",
    "encode_body",
    "encode_frame",
    "encode_raw_frame",
    "is_zero_trade_no",
    "model_code",
    "parse_trade_no",
    "seq_bytes",
    "slots_from_periods",
    "tier_at",
    "two_bit_fields",
]
