"""OCPP-J RPC frames: text in, typed frame out (and back), with schema validation.

::

    CALL        [2, "<messageId>", "<Action>", {payload}]
    CALLRESULT  [3, "<messageId>", {payload}]
    CALLERROR   [4, "<messageId>", "<errorCode>", "<errorDescription>", {errorDetails}]

:func:`decode_frame` never returns a half-valid frame: anything wrong raises
:class:`~bridges.ocpp.errors.FrameError` carrying the CALLERROR code to answer with (see the
table below) and the offending message id (``"-1"`` when unreadable, as OCPP-J 2.0.1 §4.2.3
prescribes). :func:`call_error_for` turns that error into the CALLERROR text for a version.

=======================================  ==========================  =========================
what is wrong                            2.0.1 code                  1.6 code
=======================================  ==========================  =========================
not UTF-8 / not JSON / not an array,     RpcFrameworkError           FormationViolation
id unreadable, wrong element count
MessageTypeId not 2, 3 or 4              MessageTypeNotSupported     FormationViolation
payload not a JSON object                FormatViolation             FormationViolation
action not in the version                NotImplemented              NotImplemented
action of the version but not one the   NotSupported                NotSupported
receiver accepts (wrong direction)
schema: wrong JSON type                  TypeConstraintViolation     TypeConstraintViolation
schema: required field missing,          OccurrenceConstraint-       OccurenceConstraint-
too few / many items                     Violation                   Violation
schema: bad value (enum, length, range)  PropertyConstraintViolation PropertyConstraintViolation
schema: unknown field, anything else     FormatViolation             FormationViolation
frame larger than the limit              FormatViolation             FormationViolation
=======================================  ==========================  =========================

The schema classification follows the specification's definitions of the codes; it differs
from the ``ocpp`` library's own (which answers a missing field with ProtocolError and a bad
enum value with FormatViolation). The schemas and their cached validators are the library's
(:func:`ocpp.messages.get_validator`), used with the same float/Decimal choice per action as
the library so its validator cache stays coherent.

Numbers: JSON floats are parsed as :class:`~decimal.Decimal` (exact: ``12345.6`` stays
``Decimal("12345.6")``), integers stay ``int``. On encoding a Decimal is written as an integer
when integral, else through its shortest float repr (the ``ocpp`` library's own encoder would
round it to one decimal).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ocpp.messages import get_validator

from bridges.ocpp.actions import Role, is_known, receivable
from bridges.ocpp.errors import UNKNOWN_ID, FrameError, FrameTooLarge
from bridges.ocpp.versions import ErrorCode, OcppVersion, wire_error_code

CALL = 2
CALL_RESULT = 3
CALL_ERROR = 4
MAX_ID_LENGTH = 36
DEFAULT_MAX_FRAME_BYTES = 1 << 20
"""Default size limit: the same 1 MiB as the MQTT envelope, so anything accepted can travel."""


@dataclass(frozen=True, slots=True)
class Call:
    """A request."""

    unique_id: str
    action: str
    payload: dict[str, Any]
    message_type_id: int = field(default=CALL, init=False)


@dataclass(frozen=True, slots=True)
class CallResult:
    """A successful answer; ``action`` is the answered call's action when the caller knew it."""

    unique_id: str
    payload: dict[str, Any]
    action: str | None = None
    message_type_id: int = field(default=CALL_RESULT, init=False)


@dataclass(frozen=True, slots=True)
class CallError:
    """An error answer; ``error_code`` as on the wire (either version's spelling)."""

    unique_id: str
    error_code: str
    description: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    message_type_id: int = field(default=CALL_ERROR, init=False)


Frame = Call | CallResult | CallError

_ID_PREFIX = re.compile(r'^\s*\[\s*(\d+)\s*,\s*"([^"\\]{1,36})"')


def _peek(text: str) -> tuple[int | None, str]:
    """Best effort (type id, message id) of a frame too broken or too big to parse."""
    match = _ID_PREFIX.match(text[:128])
    if match is None:
        return None, UNKNOWN_ID
    return int(match.group(1)), match.group(2)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_frame_size(data: str | bytes, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
    """Raise :class:`FrameTooLarge` when ``data`` is larger than ``max_bytes`` (UTF-8 bytes)."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        text = data[:128].decode("utf-8", "replace") if isinstance(data, bytes) else data
        type_id, unique_id = _peek(text)
        raise FrameTooLarge(
            ErrorCode.FORMAT_VIOLATION, f"frame of {size} bytes is above the limit of {max_bytes}",
            unique_id=unique_id, message_type_id=type_id,
            details={"size": size, "limit": max_bytes},
        )


def _rpc_error(description: str, unique_id: str = UNKNOWN_ID,
               type_id: int | None = None) -> FrameError:
    return FrameError(ErrorCode.RPC_FRAMEWORK_ERROR, description, unique_id=unique_id,
                      message_type_id=type_id)


def decode_frame(
    data: str | bytes,
    version: OcppVersion,
    *,
    receiver: Role | None = None,
    pending: Mapping[str, str] | None = None,
    validate: bool = True,
    max_bytes: int | None = DEFAULT_MAX_FRAME_BYTES,
) -> Frame:
    """Parse one WebSocket text message.

    ``receiver``: the role receiving it; a CALL the other side may not send raises NotSupported.
    ``pending``: message id -> action of the calls this side has outstanding; a CALLRESULT for
    one of them gets its ``action`` set and is schema-validated. ``validate=False`` checks the
    framing only (a per-station lenient mode).
    """
    if max_bytes is not None:
        check_frame_size(data, max_bytes)
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise _rpc_error("frame is not UTF-8") from None
    else:
        text = data
    try:
        msg = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except ValueError as exc:
        peek_type, peek_id = _peek(text)
        raise _rpc_error(f"frame is not JSON: {exc}", peek_id, peek_type) from None
    if not isinstance(msg, list) or not msg:
        raise _rpc_error("frame is not a non-empty JSON array")
    type_id = msg[0]
    if isinstance(type_id, bool) or not isinstance(type_id, int):
        raise _rpc_error("MessageTypeId is not an integer")
    if len(msg) < 2 or not isinstance(msg[1], str) or not msg[1]:
        raise _rpc_error("message id missing or not a string", type_id=type_id)
    unique_id: str = msg[1]
    if len(unique_id) > MAX_ID_LENGTH:
        raise _rpc_error(f"message id longer than {MAX_ID_LENGTH} characters", type_id=type_id)
    if type_id == CALL:
        return _decode_call(msg, unique_id, version, receiver, validate)
    if type_id == CALL_RESULT:
        return _decode_result(msg, unique_id, version, pending, validate)
    if type_id == CALL_ERROR:
        return _decode_error(msg, unique_id)
    raise FrameError(ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED, f"MessageTypeId {type_id} is not supported",
                     unique_id=unique_id, message_type_id=type_id)


def _decode_call(msg: list[Any], unique_id: str, version: OcppVersion, receiver: Role | None,
                 validate: bool) -> Call:
    if len(msg) != 4:
        raise _rpc_error(f"a CALL has 4 elements, not {len(msg)}", unique_id, CALL)
    action, payload = msg[2], msg[3]
    if not isinstance(action, str):
        raise _rpc_error("action is not a string", unique_id, CALL)
    if not isinstance(payload, dict):
        raise FrameError(ErrorCode.FORMAT_VIOLATION, "payload is not a JSON object",
                         unique_id=unique_id, action=action, message_type_id=CALL)
    if not is_known(version, action):
        raise FrameError(ErrorCode.NOT_IMPLEMENTED, f"{action!r} is not an OCPP {version} action",
                         unique_id=unique_id, action=action, message_type_id=CALL)
    if receiver is not None and not receivable(version, receiver, action):
        raise FrameError(ErrorCode.NOT_SUPPORTED,
                         f"{action} is not sent to the {receiver.value.replace('_', ' ')}",
                         unique_id=unique_id, action=action, message_type_id=CALL)
    if validate:
        validate_payload(version, CALL, action, payload, unique_id=unique_id)
    return Call(unique_id, action, payload)


def _decode_result(msg: list[Any], unique_id: str, version: OcppVersion,
                   pending: Mapping[str, str] | None, validate: bool) -> CallResult:
    if len(msg) != 3:
        raise _rpc_error(f"a CALLRESULT has 3 elements, not {len(msg)}", unique_id, CALL_RESULT)
    payload = msg[2]
    action = pending.get(unique_id) if pending is not None else None
    if not isinstance(payload, dict):
        raise FrameError(ErrorCode.FORMAT_VIOLATION, "payload is not a JSON object",
                         unique_id=unique_id, action=action, message_type_id=CALL_RESULT)
    if validate and action is not None:
        validate_payload(version, CALL_RESULT, action, payload, unique_id=unique_id)
    return CallResult(unique_id, payload, action)


def _decode_error(msg: list[Any], unique_id: str) -> CallError:
    # Lenient on purpose: a CALLERROR with details missing still tells what went wrong.
    if len(msg) not in (4, 5) or not isinstance(msg[2], str) or not isinstance(msg[3], str):
        raise _rpc_error("a CALLERROR is [4, id, code, description, details]", unique_id,
                         CALL_ERROR)
    details = msg[4] if len(msg) == 5 else {}
    if not isinstance(details, dict):
        details = {"details": details}
    return CallError(unique_id, msg[2], msg[3], details)


# -- schema validation ----------------------------------------------------------------------

_TYPE = ErrorCode.TYPE_CONSTRAINT_VIOLATION
_OCCURRENCE = ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION
_PROPERTY = ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
_KEYWORD_CODE = {
    "type": _TYPE,
    "required": _OCCURRENCE,
    "minItems": _OCCURRENCE,
    "maxItems": _OCCURRENCE,
    "enum": _PROPERTY,
    "maxLength": _PROPERTY,
    "minLength": _PROPERTY,
    "minimum": _PROPERTY,
    "maximum": _PROPERTY,
    "exclusiveMinimum": _PROPERTY,
    "exclusiveMaximum": _PROPERTY,
    "multipleOf": _PROPERTY,
    "pattern": _PROPERTY,
    "format": _PROPERTY,
}
# The ocpp library parses these schemas (and payloads) with Decimal because of multipleOf 0.1.
_DECIMAL_SCHEMAS = {
    (CALL, "SetChargingProfile"), (CALL, "RemoteStartTransaction"),
    (CALL_RESULT, "GetCompositeSchedule"),
}


def _validator(version: OcppVersion, type_id: int, action: str) -> Any:
    decimal_schema = version is OcppVersion.V16 and (type_id, action) in _DECIMAL_SCHEMAS
    try:
        return get_validator(type_id, action, version.value,
                             parse_float=Decimal if decimal_schema else float)
    except (OSError, ValueError) as exc:
        raise FrameError(ErrorCode.NOT_IMPLEMENTED, f"no schema for {action} in OCPP {version}",
                         action=action, message_type_id=type_id) from exc


def validate_payload(version: OcppVersion, type_id: int, action: str, payload: Mapping[str, Any],
                     *, unique_id: str = UNKNOWN_ID) -> None:
    """Validate a CALL (``type_id=2``) or CALLRESULT (3) payload against the official schema.

    Raises :class:`FrameError` with the code of the table in the module docstring; the first
    error at the shallowest path wins, so the answer is deterministic.
    """
    validator = _validator(version, type_id, action)
    errors = list(validator.iter_errors(_plain(payload)))
    if not errors:
        return
    worst = min(errors, key=lambda e: len(e.absolute_path))
    keyword = str(worst.validator)
    code = _KEYWORD_CODE.get(keyword, ErrorCode.FORMAT_VIOLATION)
    where = "/".join(str(p) for p in worst.absolute_path) or "(payload)"
    raise FrameError(code, f"{action}: {where}: {worst.message}", unique_id=unique_id,
                     action=action, message_type_id=type_id,
                     details={"path": where, "keyword": keyword})


def _plain(value: Any) -> Any:
    """A JSON-like copy for the validator: floats as exact Decimals (what :func:`decode_frame`
    produces; the multipleOf-0.1 schemas need them), mappings as dicts, tuples as lists."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- encoding --------------------------------------------------------------------------------

def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be written as JSON")
        if value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_default, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def encode_call(unique_id: str, action: str, payload: Mapping[str, Any], *,
                version: OcppVersion | None = None) -> str:
    """A CALL frame; validated against the schema when ``version`` is given."""
    if version is not None:
        validate_payload(version, CALL, action, payload, unique_id=unique_id)
    return _dumps([CALL, unique_id, action, payload])


def encode_call_result(unique_id: str, payload: Mapping[str, Any], *,
                       action: str | None = None, version: OcppVersion | None = None) -> str:
    """A CALLRESULT frame; validated when both ``action`` and ``version`` are given."""
    if version is not None and action is not None:
        validate_payload(version, CALL_RESULT, action, payload, unique_id=unique_id)
    return _dumps([CALL_RESULT, unique_id, payload])


def encode_call_error(unique_id: str, code: ErrorCode | str, description: str = "",
                      details: Mapping[str, Any] | None = None, *,
                      version: OcppVersion | None = None) -> str:
    """A CALLERROR frame; an :class:`ErrorCode` is spelled for ``version`` (2.0.1 when None)."""
    if isinstance(code, ErrorCode):
        wire = wire_error_code(code, version) if version is not None else code.value
    else:
        wire = code
    return _dumps([CALL_ERROR, unique_id, wire, description[:255], dict(details or {})])


def call_error_for(error: FrameError, version: OcppVersion) -> str:
    """The CALLERROR answering a :class:`FrameError` (check ``error.answerable`` first)."""
    return encode_call_error(error.unique_id, error.code, error.description, error.details,
                             version=version)


def encode_frame(frame: Frame) -> str:
    """Any frame back to text (no validation)."""
    if isinstance(frame, Call):
        return encode_call(frame.unique_id, frame.action, frame.payload)
    if isinstance(frame, CallResult):
        return encode_call_result(frame.unique_id, frame.payload)
    return encode_call_error(frame.unique_id, frame.error_code, frame.description, frame.details)
