"""OCPP-J 1.6 and 2.0.1 <-> thing model: pure translation (no sockets, no clock).

The gateway's WebSocket listener feeds text frames in and gets typed frames, thing-model
messages and OCPP payloads out. Times are always passed in (ms since the epoch).

Public API
==========

Frames (:mod:`~bridges.ocpp.rpc`)
    :func:`decode_frame` ``(data, version, *, receiver=None, pending=None, validate=True,
    max_bytes=1 MiB) -> Call | CallResult | CallError``; :func:`encode_call`,
    :func:`encode_call_result`, :func:`encode_call_error`, :func:`call_error_for`
    ``(FrameError, version) -> str``, :func:`encode_frame`, :func:`validate_payload`,
    :func:`check_frame_size`. Schemas are the ``ocpp`` library's.
Charger -> thing model
    :class:`ChargePointTranslator` ``(charge_point_id, version).translate(call, receive_ms=...,
    transaction_id=None) -> Translation`` routes every CALL and keeps session state; the
    per-message mappers live in :mod:`~bridges.ocpp.uplink` (boot, status, meter values,
    authorize, firmware/diagnostics/log status, security events, NotifyEvent, DataTransfer)
    and :mod:`~bridges.ocpp.sessions` (1.6 Start/Stop/MeterValues and 2.0.1 TransactionEvent
    -> sessionStarted / sessionUpdated / sessionEnded). A :class:`Translation` holds
    :class:`ThingMessage`\\ s (product, device, prop/event, name, params, ts, once_key) and
    :class:`Anomaly`\\ s (flagged, never silently "fixed").
Answers to the charger (:mod:`~bridges.ocpp.responses`)
    ``boot_response``, ``heartbeat_response``, ``authorize_response``,
    ``start_transaction_response``, ``stop_transaction_response``,
    ``transaction_event_response``, ``data_transfer_response``, ``empty_response``.
Thing-model services -> charger (:mod:`~bridges.ocpp.services`)
    :func:`service_request` ``(version, product, service, params, *, charge_point_id, device,
    request_id=None, now_ms=None, session_id=None) -> OcppRequest(action, payload)``;
    :func:`service_output` ``(version, product, service, result_payload) -> dict``.
Helpers
    :mod:`~bridges.ocpp.devices` (device-id rule), :mod:`~bridges.ocpp.timestamps`
    (``parse_timestamp_ms``, ``format_timestamp``, ``clock_skew_event``),
    :mod:`~bridges.ocpp.idtokens`, :mod:`~bridges.ocpp.meter` (sampled values, exact units),
    :mod:`~bridges.ocpp.table` (the mapping as data; ``render_markdown()``).

Device ids: charger = ``chargePointId``; connector = ``{cp}-{connectorId}`` (1.6) /
``{cp}-{evseId}`` or ``{cp}-{evseId}-{connectorId}`` when connectorId > 1 (2.0.1); connector /
EVSE 0 = the station ``meter`` ``{cp}-0``. Details in :mod:`~bridges.ocpp.devices`.

Exceptions
==========

::

    OcppBridgeError
    ├── FrameError            a frame breaking OCPP-J RPC or the schema: .code (ErrorCode),
    │   │                     .unique_id ("-1" if unreadable), .action, .answerable,
    │   │                     .wire_code(version)
    │   └── FrameTooLarge     above the size limit
    ├── TimestampError        (ValueError) not an RFC 3339 date-time
    ├── DeviceIdError         (ValueError) id not a topic level / not this charge point's
    ├── MappingError          (ValueError) valid OCPP the thing model cannot place
    └── ServiceError          (ValueError) a service call with no valid OCPP form
        └── UnsupportedService   no OCPP equivalent at all
"""

from bridges.ocpp.actions import ACTIONS, CHARGE_POINT_INITIATED, CSMS_INITIATED, Role
from bridges.ocpp.devices import (
    ConnectorRef,
    connector_device_id,
    device_id,
    evse_device_id,
    parse_device_id,
    station_meter_id,
)
from bridges.ocpp.errors import (
    UNKNOWN_ID,
    DeviceIdError,
    FrameError,
    FrameTooLarge,
    MappingError,
    OcppBridgeError,
    ServiceError,
    TimestampError,
    UnsupportedService,
)
from bridges.ocpp.responses import (
    authorize_response,
    boot_response,
    data_transfer_response,
    empty_response,
    heartbeat_response,
    start_transaction_response,
    stop_transaction_response,
    transaction_event_response,
)
from bridges.ocpp.rpc import (
    DEFAULT_MAX_FRAME_BYTES,
    Call,
    CallError,
    CallResult,
    Frame,
    call_error_for,
    check_frame_size,
    decode_frame,
    encode_call,
    encode_call_error,
    encode_call_result,
    encode_frame,
    validate_payload,
)
from bridges.ocpp.services import (
    SERVICE_ACTIONS,
    OcppRequest,
    service_output,
    service_request,
)
from bridges.ocpp.sessions import SessionState, start_transaction_key
from bridges.ocpp.table import UPLINK, render_markdown
from bridges.ocpp.timestamps import (
    clock_skew_event,
    clock_skew_s,
    format_timestamp,
    parse_timestamp_ms,
)
from bridges.ocpp.translation import Anomaly, MessageKind, ThingMessage, Translation
from bridges.ocpp.translator import ChargePointTranslator
from bridges.ocpp.versions import SUBPROTOCOLS, ErrorCode, OcppVersion, wire_error_code

__all__ = [
    "ACTIONS",
    "CHARGE_POINT_INITIATED",
    "CSMS_INITIATED",
    "DEFAULT_MAX_FRAME_BYTES",
    "SERVICE_ACTIONS",
    "SUBPROTOCOLS",
    "UNKNOWN_ID",
    "UPLINK",
    "Anomaly",
    "Call",
    "CallError",
    "CallResult",
    "ChargePointTranslator",
    "ConnectorRef",
    "DeviceIdError",
    "ErrorCode",
    "Frame",
    "FrameError",
    "FrameTooLarge",
    "MappingError",
    "MessageKind",
    "OcppBridgeError",
    "OcppRequest",
    "OcppVersion",
    "Role",
    "ServiceError",
    "SessionState",
    "ThingMessage",
    "TimestampError",
    "Translation",
    "UnsupportedService",
    "authorize_response",
    "boot_response",
    "call_error_for",
    "check_frame_size",
    "clock_skew_event",
    "clock_skew_s",
    "connector_device_id",
    "data_transfer_response",
    "decode_frame",
    "device_id",
    "empty_response",
    "encode_call",
    "encode_call_error",
    "encode_call_result",
    "encode_frame",
    "evse_device_id",
    "format_timestamp",
    "heartbeat_response",
    "parse_device_id",
    "parse_timestamp_ms",
    "render_markdown",
    "service_output",
    "service_request",
    "start_transaction_key",
    "start_transaction_response",
    "station_meter_id",
    "stop_transaction_response",
    "transaction_event_response",
    "validate_payload",
    "wire_error_code",
]
