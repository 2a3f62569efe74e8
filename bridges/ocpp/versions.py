"""OCPP versions, their WebSocket subprotocols and the CALLERROR codes of each."""

from __future__ import annotations

from enum import StrEnum


class OcppVersion(StrEnum):
    """An OCPP-J version this bridge speaks (the value is the ``ocpp`` library's version string)."""

    V16 = "1.6"
    V201 = "2.0.1"

    @property
    def subprotocol(self) -> str:
        """The WebSocket subprotocol (``Sec-WebSocket-Protocol``)."""
        return _SUBPROTOCOL[self]

    @property
    def src(self) -> str:
        """The envelope ``src`` tag."""
        return _SRC[self]

    @classmethod
    def from_subprotocol(cls, name: str) -> OcppVersion:
        """``"ocpp1.6"`` -> V16, ``"ocpp2.0.1"`` -> V201; ValueError otherwise."""
        for version, sub in _SUBPROTOCOL.items():
            if sub == name:
                return version
        raise ValueError(f"not an OCPP subprotocol this bridge speaks: {name!r}")


_SUBPROTOCOL = {OcppVersion.V16: "ocpp1.6", OcppVersion.V201: "ocpp2.0.1"}
_SRC = {OcppVersion.V16: "ocpp16", OcppVersion.V201: "ocpp201"}
SUBPROTOCOLS: tuple[str, ...] = tuple(_SUBPROTOCOL.values())


class ErrorCode(StrEnum):
    """CALLERROR codes by their OCPP 2.0.1 names; :func:`wire_error_code` spells them per version."""

    FORMAT_VIOLATION = "FormatViolation"
    GENERIC_ERROR = "GenericError"
    INTERNAL_ERROR = "InternalError"
    MESSAGE_TYPE_NOT_SUPPORTED = "MessageTypeNotSupported"
    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    OCCURRENCE_CONSTRAINT_VIOLATION = "OccurrenceConstraintViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    PROTOCOL_ERROR = "ProtocolError"
    RPC_FRAMEWORK_ERROR = "RpcFrameworkError"
    SECURITY_ERROR = "SecurityError"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"


# OCPP-J 1.6 §4.2.3 has no RpcFrameworkError / MessageTypeNotSupported and spells two codes
# differently ("FormationViolation", "OccurenceConstraintViolation" [sic]).
_V16_SPELLING = {
    ErrorCode.FORMAT_VIOLATION: "FormationViolation",
    ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION: "OccurenceConstraintViolation",
    ErrorCode.RPC_FRAMEWORK_ERROR: "FormationViolation",
    ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED: "FormationViolation",
}
_FROM_WIRE = {
    "FormationViolation": ErrorCode.FORMAT_VIOLATION,
    "OccurenceConstraintViolation": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
}


def wire_error_code(code: ErrorCode, version: OcppVersion) -> str:
    """The code as the given version writes it on the wire."""
    if version is OcppVersion.V16:
        return _V16_SPELLING.get(code, code.value)
    return code.value


def parse_error_code(text: str) -> ErrorCode | None:
    """A wire code of either version -> :class:`ErrorCode` (None when it is not a standard code)."""
    if text in _FROM_WIRE:
        return _FROM_WIRE[text]
    try:
        return ErrorCode(text)
    except ValueError:
        return None
