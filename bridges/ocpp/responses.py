"""CALLRESULT payloads the gateway (as CSMS) answers the charger's CALLs with.

Times are passed in (ms since the epoch): this module has no clock. Decisions
(authorization, registration) come from the cloud's reply params or the gateway's fallback,
in thing-model terms (``{accepted, status?, expiresAt?}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridges.ocpp.timestamps import format_timestamp
from bridges.ocpp.versions import OcppVersion

AUTH_STATUS: dict[OcppVersion, frozenset[str]] = {
    OcppVersion.V16: frozenset({"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"}),
    OcppVersion.V201: frozenset({"Accepted", "Blocked", "ConcurrentTx", "Expired", "Invalid",
                                 "NoCredit", "NotAllowedTypeEVSE", "NotAtThisLocation",
                                 "NotAtThisTime", "Unknown"}),
}

# Actions whose answer is always an empty object (both versions where they exist).
EMPTY_RESPONSES = frozenset({
    "StatusNotification", "MeterValues", "FirmwareStatusNotification",
    "DiagnosticsStatusNotification", "LogStatusNotification", "SecurityEventNotification",
    "SignedFirmwareStatusNotification", "NotifyEvent", "NotifyReport",
    "NotifyMonitoringReport", "ReservationStatusUpdate", "NotifyChargingLimit",
    "ClearedChargingLimit", "NotifyCustomerInformation", "ReportChargingProfiles",
    "PublishFirmwareStatusNotification",
})


def boot_response(status: str, now_ms: int, interval_s: int) -> dict[str, Any]:
    """BootNotification answer (same shape in both versions); status Accepted/Pending/Rejected."""
    return {"status": status, "currentTime": format_timestamp(now_ms), "interval": interval_s}


def heartbeat_response(now_ms: int) -> dict[str, Any]:
    """Heartbeat answer."""
    return {"currentTime": format_timestamp(now_ms)}


def auth_status(version: OcppVersion, reply: Mapping[str, Any] | None) -> str:
    """The AuthorizationStatus for a thing-model decision (None: no decision -> Invalid)."""
    if reply is None:
        return "Invalid"
    status = reply.get("status")
    if isinstance(status, str) and status in AUTH_STATUS[version]:
        return status
    return "Accepted" if reply.get("accepted") else "Invalid"


def id_tag_info(version: OcppVersion, reply: Mapping[str, Any] | None) -> dict[str, Any]:
    """1.6 ``idTagInfo`` / 2.0.1 ``idTokenInfo`` object."""
    info: dict[str, Any] = {"status": auth_status(version, reply)}
    expires = reply.get("expiresAt") if reply is not None else None
    if isinstance(expires, int) and not isinstance(expires, bool):
        key = "expiryDate" if version is OcppVersion.V16 else "cacheExpiryDateTime"
        info[key] = format_timestamp(expires)
    return info


def authorize_response(version: OcppVersion, reply: Mapping[str, Any] | None) -> dict[str, Any]:
    """Authorize answer from the ``authorize`` reply (or the local decision)."""
    key = "idTagInfo" if version is OcppVersion.V16 else "idTokenInfo"
    return {key: id_tag_info(version, reply)}


def start_transaction_response(transaction_id: int, reply: Mapping[str, Any] | None
                               ) -> dict[str, Any]:
    """1.6 StartTransaction answer."""
    return {"transactionId": transaction_id,
            "idTagInfo": id_tag_info(OcppVersion.V16, reply)}


def stop_transaction_response(reply: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """1.6 StopTransaction answer (``idTagInfo`` only when the stop carried an idTag)."""
    return {} if reply is None else {"idTagInfo": id_tag_info(OcppVersion.V16, reply)}


def transaction_event_response(reply: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """2.0.1 TransactionEvent answer (``idTokenInfo`` is due when the event had an idToken)."""
    return {} if reply is None else {"idTokenInfo": id_tag_info(OcppVersion.V201, reply)}


def data_transfer_response(status: str = "UnknownVendorId", data: str | None = None
                           ) -> dict[str, Any]:
    """DataTransfer answer (Accepted / Rejected / UnknownMessageId / UnknownVendorId)."""
    out: dict[str, Any] = {"status": status}
    if data is not None:
        out["data"] = data
    return out


def empty_response(action: str) -> dict[str, Any] | None:
    """``{}`` for the actions in :data:`EMPTY_RESPONSES`, else None."""
    return {} if action in EMPTY_RESPONSES else None
