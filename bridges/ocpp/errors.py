"""The exception tree of :mod:`bridges.ocpp` (documented in the package docstring)."""

from __future__ import annotations

from typing import Any

from bridges.ocpp.versions import ErrorCode, OcppVersion, wire_error_code

UNKNOWN_ID = "-1"
"""The message id a CALLERROR carries when the offending frame's id could not be read."""


class OcppBridgeError(Exception):
    """Base of everything :mod:`bridges.ocpp` raises."""


class FrameError(OcppBridgeError):
    """A frame that breaks OCPP-J RPC framing or the action's JSON schema.

    ``code`` is the CALLERROR code to answer with (:meth:`wire_code` spells it for a version),
    ``unique_id`` the offending message id (``"-1"`` when unreadable), ``action`` when known.
    ``answerable`` says whether a CALLERROR is due at all: it is only ever an answer to a CALL
    (or to something that may have been one), never to a broken CALLRESULT/CALLERROR.
    """

    def __init__(
        self,
        code: ErrorCode,
        description: str,
        *,
        unique_id: str = UNKNOWN_ID,
        action: str | None = None,
        message_type_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code.value}: {description}")
        self.code = code
        self.description = description
        self.unique_id = unique_id
        self.action = action
        self.message_type_id = message_type_id
        self.details: dict[str, Any] = details or {}

    @property
    def answerable(self) -> bool:
        """True when the frame was (or may have been) a CALL, so a CALLERROR is the answer."""
        return self.message_type_id not in (3, 4)

    def wire_code(self, version: OcppVersion) -> str:
        """The code spelled for ``version``."""
        return wire_error_code(self.code, version)


class FrameTooLarge(FrameError):
    """A frame above the configured size limit (answered FormatViolation / FormationViolation)."""


class TimestampError(OcppBridgeError, ValueError):
    """A date-time string that is not ISO 8601 / RFC 3339."""


class DeviceIdError(OcppBridgeError, ValueError):
    """A charge-point id that cannot be a topic level, or a device id of another charge point."""


class MappingError(OcppBridgeError, ValueError):
    """A schema-valid OCPP payload the thing model cannot represent (e.g. unknown transaction)."""


class ServiceError(OcppBridgeError, ValueError):
    """A thing-model service call that cannot become an OCPP call (bad input, no equivalent)."""


class UnsupportedService(ServiceError):
    """The service has no OCPP equivalent in this version."""
