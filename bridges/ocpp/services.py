"""Thing-model services -> OCPP CALLs (per version), and CALLRESULTs -> service outputs.

:func:`service_request` builds the CALL (action + payload, schema-validated) for a service
invoked on a ``charger`` or ``connector`` device; :func:`service_output` turns the charger's
CALLRESULT payload into the service's output params. :data:`SERVICE_ACTIONS` is the table.

Conventions:

* ``chargingProfile`` / ``profile`` inputs are OCPP-native maps (camelCase, the version's own
  ChargingProfileType) and are passed through; the schema check catches a wrong shape.
* Times in inputs are ms since the epoch (thing-model ``timestamp``) and become RFC 3339.
* 2.0.1 requests that need an integer id (``remoteStartId``, ``requestId``) take the caller's
  ``request_id`` (unique per station: the gateway's per-device sequence works).
* A 2.0.1 variable is ``component`` + ``key``, or a dotted ``"Component.Variable"`` key.
* ``remoteStart.sessionId`` cannot be passed on (the charger picks OCPP transaction ids); the
  2.0.1 answer's ``transactionId`` comes back as output ``sessionId``.
* Rejections keep the charger's status text in ``reason`` / ``status``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridges.ocpp.devices import ConnectorRef, check_charge_point_id, parse_device_id
from bridges.ocpp.errors import FrameError, MappingError, ServiceError, UnsupportedService
from bridges.ocpp.idtokens import id_token_obj
from bridges.ocpp.rpc import CALL, validate_payload
from bridges.ocpp.timestamps import format_timestamp
from bridges.ocpp.versions import OcppVersion

V16 = OcppVersion.V16
V201 = OcppVersion.V201

SERVICE_ACTIONS: dict[str, dict[OcppVersion, str]] = {
    "connector.remoteStart": {V16: "RemoteStartTransaction", V201: "RequestStartTransaction"},
    "connector.remoteStop": {V16: "RemoteStopTransaction", V201: "RequestStopTransaction"},
    "connector.unlock": {V16: "UnlockConnector", V201: "UnlockConnector"},
    "connector.changeAvailability": {V16: "ChangeAvailability", V201: "ChangeAvailability"},
    "connector.reserveNow": {V16: "ReserveNow", V201: "ReserveNow"},
    "connector.cancelReservation": {V16: "CancelReservation", V201: "CancelReservation"},
    "connector.setChargingProfile": {V16: "SetChargingProfile", V201: "SetChargingProfile"},
    "connector.clearChargingProfile": {V16: "ClearChargingProfile",
                                       V201: "ClearChargingProfile"},
    "connector.readRealtime": {V16: "TriggerMessage", V201: "TriggerMessage"},
    "charger.reset": {V16: "Reset", V201: "Reset"},
    "charger.updateFirmware": {V16: "UpdateFirmware", V201: "UpdateFirmware"},
    "charger.getDiagnostics": {V16: "GetDiagnostics", V201: "GetLog"},
    "charger.setConfiguration": {V16: "ChangeConfiguration", V201: "SetVariables"},
    "charger.getConfiguration": {V16: "GetConfiguration", V201: "GetVariables"},
    "charger.triggerMessage": {V16: "TriggerMessage", V201: "TriggerMessage"},
    "charger.sendLocalList": {V16: "SendLocalList", V201: "SendLocalList"},
    "charger.dataTransfer": {V16: "DataTransfer", V201: "DataTransfer"},
}

RESET_TYPES: dict[OcppVersion, dict[str, str]] = {
    V16: {"soft": "Soft", "hard": "Hard", "immediate": "Hard", "on_idle": "Soft"},
    V201: {"soft": "OnIdle", "hard": "Immediate", "immediate": "Immediate",
           "on_idle": "OnIdle"},
}

TRIGGER_MESSAGES: dict[OcppVersion, dict[str, str]] = {
    V16: {"boot": "BootNotification", "heartbeat": "Heartbeat", "status": "StatusNotification",
          "meterValues": "MeterValues", "firmwareStatus": "FirmwareStatusNotification",
          "diagnosticsStatus": "DiagnosticsStatusNotification",
          "LogStatusNotification": "DiagnosticsStatusNotification"},
    V201: {"boot": "BootNotification", "heartbeat": "Heartbeat", "status": "StatusNotification",
           "meterValues": "MeterValues", "firmwareStatus": "FirmwareStatusNotification",
           "diagnosticsStatus": "LogStatusNotification", "transaction": "TransactionEvent",
           "DiagnosticsStatusNotification": "LogStatusNotification"},
}

AUTH_LIST_STATUS = {"accepted": "Accepted", "blocked": "Blocked", "expired": "Expired",
                    "invalid": "Invalid", "concurrenttx": "ConcurrentTx"}
_DELETE = {"deleted", "delete", "removed", ""}


@dataclass(frozen=True, slots=True)
class OcppRequest:
    """A CALL to send: action and payload (camelCase, schema-valid)."""

    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Ctx:
    version: OcppVersion
    charge_point_id: str
    ref: ConnectorRef | None
    request_id: int | None
    now_ms: int | None
    session_id: str | None
    id_token_type: str | None

    def connector(self) -> ConnectorRef:
        if self.ref is None:
            raise ServiceError("this service needs a connector device")
        return self.ref

    def rid(self, what: str) -> int:
        if self.request_id is None:
            raise ServiceError(f"OCPP {self.version} {what} needs a request_id")
        return self.request_id


def _need(params: Mapping[str, Any], key: str) -> Any:
    value = params.get(key)
    if value is None:
        raise ServiceError(f"input {key!r} is required")
    return value


def _ts(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ServiceError(f"{what} must be a timestamp in ms, got {value!r}")
    return format_timestamp(value)


def _variable(params: Mapping[str, Any], key_name: str = "key") -> tuple[str, str]:
    key = str(_need(params, key_name))
    component = params.get("component")
    if component:
        return str(component), key
    if "." in key:
        comp, _, var = key.partition(".")
        return comp, var
    raise ServiceError(f"OCPP 2.0.1 needs a component for variable {key!r} "
                       "(input 'component' or a 'Component.Variable' key)")


def _remote_start(c: _Ctx, p: Mapping[str, Any]) -> dict[str, Any]:
    ref = c.connector()
    id_tag = str(_need(p, "idTag"))
    if c.version is V16:
        out: dict[str, Any] = {"connectorId": ref.number, "idTag": id_tag}
    else:
        out = {"idToken": id_token_obj(id_tag, c.id_token_type),
               "remoteStartId": c.rid("RequestStartTransaction"), "evseId": ref.number}
    if p.get("chargingProfile") is not None:
        out["chargingProfile"] = dict(p["chargingProfile"])
    return out


def _remote_stop(c: _Ctx, p: Mapping[str, Any]) -> dict[str, Any]:
    session = p.get("sessionId") or c.session_id
    if not session:
        raise ServiceError("remoteStop needs a sessionId (none given, no session known)")
    if c.version is V16:
        try:
            return {"transactionId": int(session)}
        except ValueError:
            raise ServiceError(f"OCPP 1.6 transaction ids are integers: {session!r}") from None
    return {"transactionId": str(session)}


def _unlock(c: _Ctx, p: Mapping[str, Any]) -> dict[str, Any]:
    ref = c.connector()
    if c.version is V16:
        return {"connectorId": ref.number}
    return {"evseId": ref.number, "connectorId": ref.connector_id}


def _availability(c: _Ctx, p: Mapping[str, Any]) -> dict[str, Any]:
    ref = c.connector()
    kind = "Operative" if _need(p, "available") else "Inoperative"
    if c.version is V16:
        return {"connectorId": ref.number, "type": kind}
    evse: dict[str, Any] = {"id": ref.number}
    if ref.connector_id > 1:
        evse["connectorId"] = ref.connector_id
    return {"operationalStatus": kind, "evse": evse}


def _reserve(c: _Ctx, p: Mapping[str, Any]) -> dict[str, Any]:
    ref = c.connector()
    expires = _ts(_need(p, "expiresAt"), "expiresAt")
    rid, tag = int(_need(p, "reservationId")), str(_need(p, "idTag"))
    if c.version is V16:
        return {"connectorId": ref.number, "expiryDate": expires, "idTag": tag,
                "reservationId": rid}
    return {"id": rid, "expiryDateTime": expires, "idToken": id_token_obj(tag, c.id_token_type),
            "evseId": ref.number}


def _cancel(c: _Ctx, p: Mapping[str, Any]) -> dict[str, Any]:
    return {"reservationId": int(_need(p, "reservationId"))}


def _set_profile(c: _Ctx, p: Mapping[str, Any]) -> dict[str, Any]:
    ref = c.connector()
    profile = _need(p, "profile")
    if not isinstance(profile, Mapping):
        raise ServiceError("profile must be a map (the version's ChargingProfileType)")
    if c.version is V16:
        return {"connectorId": ref.number, "csChargingProfiles": dict(profile)}
    return {"evseId": ref.number, "chargingProfile": dict(profile)}


def _clear_profile(c: _Ctx, p: Mapping[str, Any]) -> dict[str, Any]:
    ref = c.connector()
    profile_id = p.get("profileId")
    if c.version is V16:
        return {"id": int(profile_id)} if profile_id is not None else {"connectorId": ref.number}
    if profile_id is not None:
        return {"chargingProfileId": int(profile_id)}
    return {"chargingProfileCriteria": {"evseId": ref.number}}


def _read_realtime(c: _Ctx, p: Mapping[str, Any]) -> dict[str, Any]:
    ref = c.connector()
    if c.version is V16:
        return {"requestedMessage": "MeterValues", "connectorId": ref.number}
    return {"requestedMessage": "MeterValues", "evse": {"id": ref.number}}


def _reset(c: _Ctx, p: Mapping[str, Any]) -> dict[str, Any]:
    kind = str(_need(p, "type"))
    try:
        return {"type": RESET_TYPES[c.version][kind]}
    except KeyError:
        raise ServiceError(f"reset type {kind!r} is not one of soft, hard, immediate, on_idle"
                           ) from None


def _update_firmware(c: _Ctx, p: Mapping[str, Any]) -> dict[str, Any]:
    location = str(_need(p, "location"))
    when = p.get("retrieveAt", c.now_ms)
    if when is None:
        raise ServiceError("updateFirmware needs retrieveAt (or the caller's now_ms)")
    retrieve = _ts(when, "retrieveAt")
    if c.version is V16:
        out: dict[str, Any] = {"location": location, "retrieveDate": retrieve}
    else:
        out = {"requestId": c.rid("UpdateFirmware"),
               "firmware": {"location": location, "retrieveDateTime": retrieve}}
    if p.get("retries") is not None:
        out["retries"] = int(p["retries"])
    return out


def _diagnostics(c: _Ctx, p: Mapping[str, Any]) -> dict[str, Any]:
    location = str(_need(p, "location"))
    start = _ts(p["start"], "start") if p.get("start") is not None else None
    stop = _ts(p["stop"], "stop") if p.get("stop") is not None else None
    if c.version is V16:
        out: dict[str, Any] = {"location": location}
        if start:
            out["startTime"] = start
        if stop:
            out["stopTime"] = stop
        return out
    log: dict[str, Any] = {"remoteLocation": location}
    if start:
        log["oldestTimestamp"] = start
    if stop:
        log["latestTimestamp"] = stop
    return {"logType": "DiagnosticsLog", "requestId": c.rid("GetLog"), "log": log}


def _set_config(c: _Ctx, p: Mapping[str, Any]) -> dict[str, Any]:
    value = str(_need(p, "value"))
    if c.version is V16:
        return {"key": str(_need(p, "key")), "value": value}
    component, variable = _variable(p)
    return {"setVariableData": [{"attributeValue": value, "component": {"name": component},
                                 "variable": {"name": variable}}]}


def _get_config(c: _Ctx, p: Mapping[str, Any]) -> dict[str, Any]:
    keys = p.get("keys") or []
    if c.version is V16:
        return {"key": [str(_need(k, "key")) for k in keys]} if keys else {}
    if not keys:
        raise ServiceError("OCPP 2.0.1 GetVariables needs keys (a full report is GetBaseReport)")
    data = []
    for item in keys:
        component, variable = _variable(item)
        data.append({"component": {"name": component}, "variable": {"name": variable}})
    return {"getVariableData": data}


def _trigger(c: _Ctx, p: Mapping[str, Any]) -> dict[str, Any]:
    message = str(_need(p, "message"))
    message = TRIGGER_MESSAGES[c.version].get(message, message)
    out: dict[str, Any] = {"requestedMessage": message}
    connector = p.get("connector")
    if connector is not None:
        if c.version is V16:
            out["connectorId"] = int(connector)
        else:
            evse: dict[str, Any] = {"id": int(connector)}
            if message == "StatusNotification":
                evse["connectorId"] = 1
            out["evse"] = evse
    return out


def _local_list(c: _Ctx, p: Mapping[str, Any]) -> dict[str, Any]:
    full = bool(_need(p, "full"))
    entries = []
    for entry in p.get("entries") or []:
        tag = str(_need(entry, "idTag"))
        raw = str(entry.get("status") or "")
        item: dict[str, Any] = {"idTag": tag} if c.version is V16 else {
            "idToken": id_token_obj(tag, c.id_token_type, default="ISO14443")}
        if raw.lower() in _DELETE:
            if full:
                continue  # a full list simply leaves it out
        else:
            status = AUTH_LIST_STATUS.get(raw.lower(), raw)
            info: dict[str, Any] = {"status": status}
            if entry.get("expiresAt") is not None:
                key = "expiryDate" if c.version is V16 else "cacheExpiryDateTime"
                info[key] = _ts(entry["expiresAt"], "expiresAt")
            item["idTagInfo" if c.version is V16 else "idTokenInfo"] = info
        entries.append(item)
    version_key = "listVersion" if c.version is V16 else "versionNumber"
    out: dict[str, Any] = {version_key: int(_need(p, "version")),
                           "updateType": "Full" if full else "Differential"}
    if entries:
        out["localAuthorizationList"] = entries
    return out


def _data_transfer(c: _Ctx, p: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"vendorId": str(_need(p, "vendorId"))}
    if p.get("messageId") is not None:
        out["messageId"] = str(p["messageId"])
    if p.get("data") is not None:
        out["data"] = str(p["data"])
    return out


_BUILDERS: dict[str, Callable[[_Ctx, Mapping[str, Any]], dict[str, Any]]] = {
    "connector.remoteStart": _remote_start,
    "connector.remoteStop": _remote_stop,
    "connector.unlock": _unlock,
    "connector.changeAvailability": _availability,
    "connector.reserveNow": _reserve,
    "connector.cancelReservation": _cancel,
    "connector.setChargingProfile": _set_profile,
    "connector.clearChargingProfile": _clear_profile,
    "connector.readRealtime": _read_realtime,
    "charger.reset": _reset,
    "charger.updateFirmware": _update_firmware,
    "charger.getDiagnostics": _diagnostics,
    "charger.setConfiguration": _set_config,
    "charger.getConfiguration": _get_config,
    "charger.triggerMessage": _trigger,
    "charger.sendLocalList": _local_list,
    "charger.dataTransfer": _data_transfer,
}


def service_request(
    version: OcppVersion,
    product: str,
    service: str,
    params: Mapping[str, Any],
    *,
    charge_point_id: str,
    device: str,
    request_id: int | None = None,
    now_ms: int | None = None,
    session_id: str | None = None,
    id_token_type: str | None = None,
    validate: bool = True,
) -> OcppRequest:
    """The OCPP CALL for a thing-model service call.

    ``device``: the target (``chargePointId`` for the charger, a connector device id, see
    :mod:`bridges.ocpp.devices`). ``session_id``: the connector's running session, used by
    ``remoteStop`` without input. ``id_token_type``: a thing-model id type for 2.0.1 tokens
    (default ``Central``). Raises :class:`UnsupportedService` when OCPP has no equivalent and
    :class:`ServiceError` for input it cannot carry.
    """
    name = f"{product}.{service}"
    if name not in SERVICE_ACTIONS:
        raise UnsupportedService(f"{name} has no OCPP {version} equivalent")
    check_charge_point_id(charge_point_id)
    ref = None
    if product == "connector":
        try:
            ref = parse_device_id(device, charge_point_id, version)
        except ValueError as exc:
            raise ServiceError(str(exc)) from None
    elif device != charge_point_id:
        raise ServiceError(f"charger services go to {charge_point_id!r}, not {device!r}")
    ctx = _Ctx(version, charge_point_id, ref, request_id, now_ms, session_id, id_token_type)
    try:
        payload = _BUILDERS[name](ctx, params)
    except (MappingError, TypeError, ValueError) as exc:
        if isinstance(exc, ServiceError):
            raise
        raise ServiceError(f"{name}: {exc}") from None
    action = SERVICE_ACTIONS[name][version]
    if validate:
        try:
            validate_payload(version, CALL, action, payload)
        except FrameError as exc:
            raise ServiceError(f"{name} -> {action} is not schema-valid: {exc}") from None
    return OcppRequest(action, payload)


# -- results -> outputs ------------------------------------------------------------------------

def _status(payload: Mapping[str, Any], ok: frozenset[str] = frozenset({"Accepted"})
            ) -> tuple[bool, str]:
    status = str(payload.get("status", ""))
    return status in ok, status


def _reason(payload: Mapping[str, Any], status: str, key: str = "statusInfo") -> str:
    info = payload.get(key)
    if isinstance(info, Mapping) and info.get("reasonCode"):
        extra = info.get("additionalInfo")
        return f"{status}: {info['reasonCode']}" + (f" ({extra})" if extra else "")
    return status


def _accepted_reason(payload: Mapping[str, Any], ok: frozenset[str] = frozenset({"Accepted"})
                     ) -> dict[str, Any]:
    accepted, status = _status(payload, ok)
    out: dict[str, Any] = {"accepted": accepted}
    if not accepted:
        out["reason"] = _reason(payload, status)
    return out


def _accepted_status(payload: Mapping[str, Any], ok: frozenset[str] = frozenset({"Accepted"})
                     ) -> dict[str, Any]:
    accepted, status = _status(payload, ok)
    return {"accepted": accepted, "status": _reason(payload, status)}


def _start_output(version: OcppVersion, payload: Mapping[str, Any]) -> dict[str, Any]:
    out = _accepted_reason(payload)
    if payload.get("transactionId"):
        out["sessionId"] = str(payload["transactionId"])
    return out


def _unlock_output(version: OcppVersion, payload: Mapping[str, Any]) -> dict[str, Any]:
    return _accepted_reason(payload, frozenset({"Unlocked"}))


def _availability_output(version: OcppVersion, payload: Mapping[str, Any]) -> dict[str, Any]:
    accepted, status = _status(payload, frozenset({"Accepted", "Scheduled"}))
    return {"accepted": accepted, "scheduled": status == "Scheduled"}


def _bare_output(version: OcppVersion, payload: Mapping[str, Any]) -> dict[str, Any]:
    return {"accepted": _status(payload)[0]}


def _reset_output(version: OcppVersion, payload: Mapping[str, Any]) -> dict[str, Any]:
    return _accepted_status(payload, frozenset({"Accepted", "Scheduled"}))


def _firmware_output(version: OcppVersion, payload: Mapping[str, Any]) -> dict[str, Any]:
    if version is V16:
        return {"accepted": True}
    return _accepted_status(payload, frozenset({"Accepted", "AcceptedCanceled"}))


def _diagnostics_output(version: OcppVersion, payload: Mapping[str, Any]) -> dict[str, Any]:
    if version is V16:
        out: dict[str, Any] = {"accepted": True}
        name = payload.get("fileName")
    else:
        out = {"accepted": _status(payload, frozenset({"Accepted", "AcceptedCanceled"}))[0]}
        name = payload.get("filename")
    if name:
        out["fileName"] = str(name)
    return out


def _set_config_output(version: OcppVersion, payload: Mapping[str, Any]) -> dict[str, Any]:
    ok = frozenset({"Accepted", "RebootRequired"})
    if version is V16:
        return _accepted_status(payload, ok)
    results = payload.get("setVariableResult") or [{}]
    first = results[0]
    status = str(first.get("attributeStatus", ""))
    return {"accepted": status in ok, "status": _reason(first, status, "attributeStatusInfo")}


def _get_config_output(version: OcppVersion, payload: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if version is V16:
        for item in payload.get("configurationKey") or []:
            values[str(item["key"])] = item.get("value")
        for key in payload.get("unknownKey") or []:
            values[str(key)] = None
        return {"values": values}
    for item in payload.get("getVariableResult") or []:
        name = f"{item['component']['name']}.{item['variable']['name']}"
        values[name] = item.get("attributeValue") if item.get(
            "attributeStatus") == "Accepted" else None
    return {"values": values}


def _trigger_output(version: OcppVersion, payload: Mapping[str, Any]) -> dict[str, Any]:
    return _accepted_status(payload)


def _data_transfer_output(version: OcppVersion, payload: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"status": str(payload.get("status", ""))}
    data = payload.get("data")
    if data is not None:
        out["data"] = data if isinstance(data, str) else json.dumps(data, default=str)
    return out


def _read_realtime_output(version: OcppVersion, payload: Mapping[str, Any]) -> dict[str, Any]:
    return {"accepted": _status(payload)[0]}


_OUTPUTS: dict[str, Callable[[OcppVersion, Mapping[str, Any]], dict[str, Any]]] = {
    "connector.remoteStart": _start_output,
    "connector.remoteStop": lambda v, p: _accepted_reason(p),
    "connector.unlock": _unlock_output,
    "connector.changeAvailability": _availability_output,
    "connector.reserveNow": lambda v, p: _accepted_reason(p),
    "connector.cancelReservation": _bare_output,
    "connector.setChargingProfile": lambda v, p: _accepted_reason(p),
    "connector.clearChargingProfile": _bare_output,
    "connector.readRealtime": _read_realtime_output,
    "charger.reset": _reset_output,
    "charger.updateFirmware": _firmware_output,
    "charger.getDiagnostics": _diagnostics_output,
    "charger.setConfiguration": _set_config_output,
    "charger.getConfiguration": _get_config_output,
    "charger.triggerMessage": _trigger_output,
    "charger.sendLocalList": lambda v, p: _accepted_status(p),
    "charger.dataTransfer": _data_transfer_output,
}


def service_output(version: OcppVersion, product: str, service: str,
                   payload: Mapping[str, Any]) -> dict[str, Any]:
    """The service's output params from the charger's CALLRESULT payload."""
    name = f"{product}.{service}"
    try:
        mapper = _OUTPUTS[name]
    except KeyError:
        raise UnsupportedService(f"{name} has no OCPP {version} equivalent") from None
    return mapper(version, payload)
